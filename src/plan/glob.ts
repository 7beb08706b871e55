/**
 * Globs of image paths, as `exclude` takes them: `*` and `?` match within one name, `**` any number of whole
 * names (`/usr/share/doc/**`), `[abc]`/`[!a-z]` one character of a set. A pattern that matches a folder matches
 * everything in it. Names starting with `.` are matched like any other.
 */
export function globMatcher(patterns: readonly string[]): (path: string) => boolean {
  if (patterns.length === 0) return () => false;
  const res = patterns.map(globToRegExp);
  return (p) => res.some((re) => re.test(p));
}

export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*' && glob[i + 1] === '*') {
      // "/**/" and a trailing "/**" span zero or more names; elsewhere "**" is any run of characters.
      const slashBefore = i === 0 || glob[i - 1] === '/';
      const slashAfter = glob[i + 2] === '/' || i + 2 === glob.length;
      i++;
      if (slashBefore && slashAfter) {
        if (glob[i + 1] === '/') {
          re += '(?:[^/]+/)*';
          i++;
        } else re += '.*';
      } else re += '.*';
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        let set = glob.slice(i + 1, end);
        if (set.startsWith('!')) set = '^' + set.slice(1);
        re += `[${set.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  // Without a trailing slash, a match may be a folder: its contents go with it.
  return new RegExp(`^${re.replace(/\/$/, '')}(?:/.*)?$`);
}
