// The `render` block of the config: how `mirror render` crawls the master's dynamic site.
// Owned by the renderer (src/render/); the main schema only embeds it.

import {z} from 'zod'

const httpUrl = z.url({protocol: /^https?$/, error: 'must be an http:// or https:// URL'})

/** scheme://host[:port] only: paths belong in `entry`, so that every saved path maps one to one. */
const siteUrl = httpUrl.refine((value) => {
  const url = new URL(value)
  return (url.pathname === '/' || url.pathname === '') && !url.search && !url.hash
}, 'give only scheme, host and port (e.g. http://127.0.0.1:8080); put paths in "entry"')

function compiles(pattern: string): boolean {
  try {
    new RegExp(pattern)
    return true
  } catch {
    return false
  }
}

export const renderSchema = z.strictObject({
  /** The master's dynamic site, e.g. http://127.0.0.1:8080 */
  origin: siteUrl,
  /** Other base URLs that mean the origin (the public URL a CMS writes into its links). */
  aliases: z.array(siteUrl).default([]),
  /** Paths where the crawl starts. */
  entry: z.array(z.string().startsWith('/', 'must start with "/"')).min(1).default(['/']),
  /** Also seed from /sitemap.xml (and sitemap indexes, gzip) and the sitemaps robots.txt names. */
  sitemap: z.boolean().default(true),
  /** URL patterns never fetched, matched against "/path?query"; `*` matches anything. */
  exclude: z.array(z.string().min(1)).default([]),
  /** Also skip the usual edit / login / history / diff / revision / sort / export links. */
  defaultExclude: z.boolean().default(true),
  /** Honour robots.txt (the `mirror` group, else `*`). */
  robotsTxt: z.boolean().default(true),
  /** Honour `<meta name="robots">` and X-Robots-Tag: noindex pages are not saved, nofollow pages' links not followed. */
  robotsMeta: z.boolean().default(true),
  /** Do not follow links marked rel="nofollow". */
  nofollow: z.boolean().default(true),
  /** Link hops from an entry beyond which pages are cut off (assets of a page never count). */
  maxDepth: z.number().int().min(0).default(50),
  /** Pages saved at most; the rest are cut off and reported. */
  maxPages: z.number().int().min(1).default(100000),
  /** Consecutive hops between date-addressed URLs of one family (calendars) before they are cut off. */
  calendarDepth: z.number().int().min(0).default(2),
  /** Requests in flight at once. */
  concurrency: z.number().int().min(1).max(64).default(8),
  /** Requests per second at most (unset: as fast as `concurrency` allows). */
  rate: z.number().positive().optional(),
  /** Seconds without a byte from the origin before a request is given up. */
  timeout: z.number().positive().default(30),
  /** Retries of a request that failed transiently (connection reset, timeout, 429, 5xx). */
  retries: z.number().int().min(0).max(10).default(2),
  userAgent: z.string().min(1).default('mirror-render/0.1'),
  /** Extra request headers; values may reference the environment as ${NAME}. */
  headers: z.record(z.string(), z.string()).default({}),
  /** Regular expressions whose matches are ignored when deciding whether a page changed. */
  volatile: z.array(z.string().refine(compiles, 'not a valid regular expression')).default([]),
  /** `relative`: links name the saved files (works from disk and any server); `clean`: root-relative original paths (needs try_files). */
  links: z.enum(['relative', 'clean']).default('relative'),
  /** Base URL for links to origin pages the snapshot leaves out (login, edit, cut off); unset: root-relative. */
  dynamicUrl: httpUrl.optional(),
  /** Where the nginx redirect map is written, relative to the snapshot; false for none. */
  redirectMap: z
    .union([z.string().regex(/^(?!\/)(?!.*(^|\/)\.\.(\/|$)).+$/, 'a path inside the snapshot (relative, no "..")'), z.literal(false)])
    .default('.mirror-redirects.map'),
  /** Render before every publish. */
  beforePublish: z.boolean().default(false),
})

export type RenderConfig = z.infer<typeof renderSchema>
