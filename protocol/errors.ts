/** The message of any thrown value, for the editor side (client, webview, transport): the engine has describeError. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
