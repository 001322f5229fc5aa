/**
 * A retry budget: every request earns `ratio` of a retry token, up to a
 * small burst; every retry spends one. With ratio 0.2 retries add at most
 * about 20% to the upstream load, so when every upstream is failing (a bad
 * deploy) retries cannot multiply the traffic.
 */
export class RetryBudget {
  private tokens: number
  private readonly ratio: number
  private readonly burst: number

  constructor(ratio: number, burst = 10) {
    this.ratio = ratio
    this.burst = burst
    this.tokens = ratio > 0 ? burst : 0
  }

  request(): void {
    this.tokens = Math.min(this.burst, this.tokens + this.ratio)
  }

  take(): boolean {
    if (this.tokens < 1) return false
    this.tokens -= 1
    return true
  }
}
