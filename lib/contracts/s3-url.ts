// Where off-box backup copies go: s3://bucket[/prefix]. Config and backup/offsite.ts share this.

/** s3://bucket/prefix → bucket and prefix (no surrounding slashes), or what is wrong with it. */
export function parseS3Url(url: string): { bucket: string; prefix: string } | { error: string } {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(\/.*)?$/.exec(url);
  if (!m) return { error: 'expected s3://bucket or s3://bucket/prefix (a bucket name of 3-63 lower-case letters, digits, dots and dashes)' };
  return { bucket: m[1]!, prefix: (m[2] ?? '').replace(/^\/+|\/+$/g, '') };
}
