/** The API VS Code injects into webviews (`acquireVsCodeApi` may be called once per page load). */
interface VsCodeWebviewApi<S = unknown> {
  postMessage(message: unknown): void;
  getState(): S | undefined;
  setState(state: S): S;
}
declare function acquireVsCodeApi<S = unknown>(): VsCodeWebviewApi<S>;

/** esbuild: the webview build emits imported CSS to dist/webview.css; the notebook build inlines it as text. */
declare module '*.css' {
  const css: string;
  export default css;
}
