vcl 4.1;
# Varnish for bench/proxy.sh (rendered at run time into bench/.peers/run/varnish/default.vcl). Placeholder: @ORIGIN@
# Builtin VCL behaviour (the origin's Cache-Control: public, max-age=3600 sets the TTL); only X-Cache is added.
backend origin { .host = "127.0.0.1"; .port = "@ORIGIN@"; }
sub vcl_deliver {
  if (obj.hits > 0) { set resp.http.X-Cache = "HIT"; } else { set resp.http.X-Cache = "MISS"; }
}
