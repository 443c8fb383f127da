/** Schema starters are written as LSP snippets; edits that are not snippets need the plain text. */
export function snippetToText(snippet: string): string {
  return snippet
    .replace(/\$\{\d+\|([^,|]*)[^|]*\|\}/g, '$1')
    .replace(/\$\{\d+:([^}]*)\}/g, '$1')
    .replace(/\$\d+/g, '');
}

/** Re-indents a multi-line starter for insertion at `indent`. */
export function indentLines(text: string, indent: string): string {
  return text
    .split('\n')
    .map((l, i) => (i === 0 || l === '' ? l : indent + l))
    .join('\n');
}
