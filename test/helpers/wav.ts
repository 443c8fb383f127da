import { writeFileSync } from 'node:fs';

/** Writes mono IEEE-float32 WAV (exact samples, for parity tests). */
export function writeFloatWav(file: string, samples: Float32Array | number[], sampleRate: number): void {
  const data = Float32Array.from(samples);
  const h = Buffer.alloc(44);
  h.write('RIFF', 0);
  h.writeUInt32LE(36 + data.byteLength, 4);
  h.write('WAVEfmt ', 8);
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(3, 20); // IEEE float
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(sampleRate, 24);
  h.writeUInt32LE(sampleRate * 4, 28);
  h.writeUInt16LE(4, 32);
  h.writeUInt16LE(32, 34);
  h.write('data', 36);
  h.writeUInt32LE(data.byteLength, 40);
  writeFileSync(file, Buffer.concat([h, Buffer.from(data.buffer)]));
}
