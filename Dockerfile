# Edgebox in a container: the package as npm publishes it, run by a non-root user.
#   docker build -t edgebox .
#   docker run -p 8080:8080 -v edgebox-data:/var/lib/edgebox edgebox
#   docker run -p 8080:8080 -v edgebox-data:/var/lib/edgebox -v ./site:/srv/site:ro edgebox /srv/site --host 0.0.0.0 --port 8080
# docs/deploy.md has the details (configuration, reload, log rotation).

# Build: compile the TypeScript and the browser client, then pack the package exactly as npm would publish it.
FROM node:24-slim AS build
WORKDIR /build
COPY . .
# --ignore-scripts: the image's Node 24 runs the build (the pinned `node` devDependency would download another,
# and its unfilled link is removed); npm pack runs `prepare` (tsc and the client build) itself
RUN npm ci --ignore-scripts --no-audit --no-fund && rm -f node_modules/.bin/node && npm pack --pack-destination /tmp

# Run: the packed package and its production dependencies only.
FROM node:24-slim
ENV NODE_ENV=production \
    EDGEBOX_HOME=/var/lib/edgebox
WORKDIR /opt/edgebox
COPY --from=build /tmp/edgebox-*.tgz /tmp/
RUN npm install --omit=dev --ignore-scripts --no-audit --no-fund /tmp/edgebox-*.tgz \
 && rm /tmp/edgebox-*.tgz && npm cache clean --force \
 && mkdir -p "$EDGEBOX_HOME" && chown node:node "$EDGEBOX_HOME"
# the data directory (the local certificate authority and the certificates it issues, tls.local): keep it across containers
VOLUME ["/var/lib/edgebox"]
USER node
EXPOSE 8080 8081
# slim images have no curl: Node's own fetch asks the health endpoint
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/_edgebox/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Node is the container's main process and Edgebox handles SIGTERM, SIGINT, SIGHUP (reload) and SIGUSR2 (reopen logs) itself
ENTRYPOINT ["node", "/opt/edgebox/node_modules/edgebox/bin/edgebox.js"]
CMD ["--host", "0.0.0.0", "--port", "8080"]
