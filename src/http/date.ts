/**
 * HTTP-date parsing and formatting (RFC 9110 §5.6.7). Pure functions.
 *
 * Recipients must accept all three formats; senders generate only IMF-fixdate:
 *
 *   IMF-fixdate   Sun, 06 Nov 1994 08:49:37 GMT
 *   rfc850-date   Sunday, 06-Nov-94 08:49:37 GMT   (obsolete)
 *   asctime-date  Sun Nov  6 08:49:37 1994         (obsolete)
 *
 * Parsing is strict. HTTP-date is case-sensitive (the grammar uses %s"..."),
 * the spacing is fixed, and the day, month and time must be real
 * (no Feb 30, no hour 24, no second 60: a leap second has no millisecond of
 * its own). The day name must be the right one for the date: a sender that
 * gets it wrong is broken, and an invalid date makes a conditional header be
 * ignored (§13.1.3, §13.1.4), which is always safe.
 * Leading and trailing whitespace is trimmed (OWS is not part of a field value, §5.5).
 */

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat']
const LONG_DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday']
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

const DAY = DAYS.join('|')
const MONTH = MONTHS.join('|')
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})'

// IMF-fixdate = day-name "," SP date1 SP time-of-day SP GMT; date1 = day SP month SP year
const IMF_FIXDATE = new RegExp(`^(${DAY}), (\\d{2}) (${MONTH}) (\\d{4}) ${TIME} GMT$`)
// rfc850-date = day-name-l "," SP date2 SP time-of-day SP GMT; date2 = day "-" month "-" 2DIGIT
const RFC850_DATE = new RegExp(`^(${LONG_DAYS.join('|')}), (\\d{2})-(${MONTH})-(\\d{2}) ${TIME} GMT$`)
// asctime-date = day-name SP date3 SP time-of-day SP year; date3 = month SP ( 2DIGIT / ( SP DIGIT ) )
const ASCTIME_DATE = new RegExp(`^(${DAY}) (${MONTH}) ( \\d|\\d{2}) ${TIME} (\\d{4})$`)

/** IMF-fixdate values parsed lately (the common form; the others depend on `now`). */
const recent = new Map<string, number>()

/**
 * Parses an HTTP-date. Returns milliseconds since the epoch (always whole
 * seconds), or undefined if the value is absent or not a valid HTTP-date.
 * `now` is used only to place the two-digit year of an rfc850-date.
 */
export function parseHttpDate(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined) return undefined
  // The same few dates (Date, Last-Modified, Expires of stored responses) are parsed again and again.
  const known = recent.get(value)
  if (known !== undefined) return known
  const v = value.trim()
  let m = IMF_FIXDATE.exec(v)
  if (m) {
    const ms = build(DAYS.indexOf(m[1]!), +m[4]!, m[3]!, +m[2]!, m[5]!, m[6]!, m[7]!)
    if (ms !== undefined) {
      if (recent.size >= 1024) recent.clear()
      recent.set(value, ms)
    }
    return ms
  }
  m = RFC850_DATE.exec(v)
  if (m) return build(LONG_DAYS.indexOf(m[1]!), fullYear(+m[4]!, now), m[3]!, +m[2]!, m[5]!, m[6]!, m[7]!)
  m = ASCTIME_DATE.exec(v)
  if (m) return build(DAYS.indexOf(m[1]!), +m[7]!, m[2]!, +m[3]!.trim(), m[4]!, m[5]!, m[6]!)
  return undefined
}

/** Formats a time as an IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT` (§5.6.7). */
export function formatHttpDate(ms: number): string {
  return new Date(ms).toUTCString()
}

/**
 * §5.6.7: a two-digit year that "appears to be more than 50 years in the
 * future" means the most recent past year with the same last two digits.
 * So the result is the year with those digits in (current - 50, current + 50].
 */
function fullYear(yy: number, now: number): number {
  const current = new Date(now).getUTCFullYear()
  let year = current - (current % 100) + yy
  if (year > current + 50) year -= 100
  else if (year <= current - 50) year += 100
  return year
}

function build(weekday: number, year: number, month: string, day: number, hh: string, mm: string, ss: string): number | undefined {
  const h = +hh
  const mi = +mm
  const s = +ss
  if (h > 23 || mi > 59 || s > 59) return undefined
  const d = new Date(0)
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to 1900-1999.
  d.setUTCFullYear(year, MONTHS.indexOf(month), day)
  d.setUTCHours(h, mi, s, 0)
  // Rejects impossible days (Feb 30 rolls over to March) and wrong day names.
  if (d.getUTCDate() !== day || d.getUTCDay() !== weekday) return undefined
  return d.getTime()
}
