// The `render` block of the config: how `mirror render` crawls the master's dynamic site.
// Owned by the renderer (src/render/); the main schema only embeds it.

import {z} from 'zod'

export const renderSchema = z.strictObject({
  /** The master's dynamic site, e.g. http://127.0.0.1:8080 */
  origin: z.url({protocol: /^https?$/, error: 'must be an http:// or https:// URL'}),
  /** Paths where the crawl starts. */
  entry: z.array(z.string().startsWith('/', 'must start with "/"')).min(1).default(['/']),
  /** Also seed from /sitemap.xml (and sitemap indexes, gzip). */
  sitemap: z.boolean().default(true),
  /** URL patterns never fetched. */
  exclude: z.array(z.string()).default([]),
  concurrency: z.number().int().min(1).max(64).default(8),
  /** Extra request headers; values may reference the environment as ${NAME}. */
  headers: z.record(z.string(), z.string()).default({}),
  /** Regular expressions whose matches are ignored when deciding whether a page changed. */
  volatile: z.array(z.string()).default([]),
  /** Render before every publish. */
  beforePublish: z.boolean().default(false),
})

export type RenderConfig = z.infer<typeof renderSchema>
