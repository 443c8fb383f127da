/**
 * Tensor-name globs for `merge.lambda.overrides`: `*` matches within one dot-separated part, `**` across parts,
 * `?` one character of a part. The merge step must use this same function so checks and runs agree.
 */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') re += '[^.]*';
    else if (c === '?') re += '[^.]';
    else re += c.replace(/[\\^$+.()|[\]{}]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** The λ for a tensor: the first override whose glob matches, else the default. */
export function lambdaFor(name: string, lambda: { default: number; overrides?: Record<string, number> }): number {
  for (const [glob, value] of Object.entries(lambda.overrides ?? {})) if (globToRegExp(glob).test(name)) return value;
  return lambda.default;
}
