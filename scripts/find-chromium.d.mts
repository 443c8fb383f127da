/** A Chromium to launch (see find-chromium.mjs), or why there is none. */
export type FoundChromium =
  | { executablePath: string; env: Record<string, string>; source: string; reason?: undefined }
  | { reason: string; executablePath?: undefined; env?: undefined; source?: undefined };
export declare const INSTALL_HINT: string;
export declare function findChromium(): FoundChromium;
