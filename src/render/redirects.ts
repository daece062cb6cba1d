// Redirects in a static snapshot: the small HTML page saved where a redirecting URL was (works
// on any server and from disk), and the nginx map a user includes to answer with a real 301/302.
// Pure: returns text.

function escapeHtml(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** The page saved for a redirecting URL; `href` is where it sends the visitor. */
export function redirectPage(href: string): string {
  const h = escapeHtml(href)
  return (
    '<!DOCTYPE html>\n<html><head><meta charset="utf-8">\n' +
    `<meta http-equiv="refresh" content="0; url=${h}">\n` +
    `<link rel="canonical" href="${h}">\n` +
    '<meta name="robots" content="noindex">\n' +
    '<title>Redirecting</title>\n' +
    `</head><body><p>This page has moved to <a href="${h}">${h}</a>.</p></body></html>\n`
  )
}

/** nginx map keys are matched against $request_uri, which keeps the client's escapes. */
function mapToken(value: string): string {
  return /^[^\s;"'{}#\\]+$/.test(value) ? value : `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
}

/**
 * The nginx map of every redirect, "/from /to;" per line, to include as
 *
 *     map $request_uri $mirror_redirect { default ""; include /etc/nginx/mirror-redirects.map; }
 *
 * and in the server block `if ($mirror_redirect) { return 301 $mirror_redirect; }`.
 */
export function redirectMap(redirects: ReadonlyArray<{from: string; to: string; status: number}>): string {
  const header = [
    '# Redirects of the rendered site, written by `mirror render`. In nginx (http block):',
    '#   map $request_uri $mirror_redirect { default ""; include /path/to/this/file; }',
    '# and in the server block:',
    '#   if ($mirror_redirect) { return 301 $mirror_redirect; }',
    '# Temporary redirects (302/303/307) are marked with their status in a comment.',
  ]
  const sorted = [...redirects].sort((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : 0))
  const lines = sorted.map((r) => `${mapToken(r.from)} ${mapToken(r.to)};${r.status === 301 || r.status === 308 ? '' : ` # ${r.status}`}`)
  return `${[...header, ...lines].join('\n')}\n`
}
