/**
 * The platforms onnxruntime-node 1.30 ships native binaries for, and so the ones the per-platform packages are built
 * for (scripts/package.mjs). Elsewhere neither the language server nor the CLI could even load (both link onnxruntime
 * at start): the extension and bin/merge-studio.js check this first.
 */
export const SUPPORTED_PLATFORMS = ['linux-x64', 'linux-arm64', 'darwin-arm64', 'win32-x64', 'win32-arm64'] as const;

/** Why Merge Studio cannot run on this machine, or undefined when it can. */
export function unsupportedPlatformReason(platform: string = process.platform, arch: string = process.arch): string | undefined {
  const here = `${platform}-${arch}`;
  if ((SUPPORTED_PLATFORMS as readonly string[]).includes(here)) return undefined;
  if (here === 'darwin-x64')
    return 'Merge Studio cannot run on an Intel Mac: onnxruntime-node, its compute engine, has no build for macOS on Intel (darwin-x64) since version 1.30. Use a Mac with Apple silicon, or Linux or Windows.';
  return `Merge Studio cannot run on ${here}: onnxruntime-node, its compute engine, has builds only for ${SUPPORTED_PLATFORMS.join(', ')}.`;
}
