#!/usr/bin/env bash
# Regenerates the committed audio fixtures in test/fixtures/audio (tests only read the committed files).
# Needs: sox with libsox-fmt-all, lame (apt-get install -y sox libsox-fmt-all lame), node.
# Known signals: `synth sine F` starts at phase 0 with amplitude 1 before `vol`; dither is off (-D) so integer
# files hold the exact quantised sine. Whitenoise uses sox's repeatable mode (-R).
set -euo pipefail
cd "$(dirname "$0")/../test/fixtures/audio"
rm -f ./*.wav ./*.flac ./*.mp3 ./*.ogg ./*.txt
rm -rf nested

S="sox -D -R"

# --- valid WAV: 0.25 s, 440 Hz sine at amplitude 0.5 in several encodings and rates
$S -n -r 16000 -c 1 -b 16 -e signed-integer sine440-16k-i16.wav synth 0.25 sine 440 vol 0.5
$S -n -r 22050 -c 1 -b 24 -e signed-integer sine440-22k-i24.wav synth 0.25 sine 440 vol 0.5
$S -n -r 44100 -c 1 -b 32 -e signed-integer sine440-44k-i32.wav synth 0.25 sine 440 vol 0.5
$S -n -r 48000 -c 1 -b 32 -e floating-point sine440-48k-f32.wav synth 0.25 sine 440 vol 0.5
$S -n -r 16000 -c 1 -b 64 -e floating-point sine440-16k-f64.wav synth 0.25 sine 440 vol 0.5
$S -n -r 16000 -c 1 -b 8 -e unsigned-integer sine440-16k-u8.wav synth 0.25 sine 440 vol 0.5
# plain WAVE_FORMAT_PCM header for 24-bit (sox writes WAVE_FORMAT_EXTENSIBLE for >16 bits by default)
$S -n -r 16000 -c 1 -b 24 -e signed-integer -t wavpcm sine440-16k-i24-pcmheader.wav synth 0.25 sine 440 vol 0.5
# stereo: left 440 Hz at 0.6, right 660 Hz at 0.4 -> mono mixdown holds 0.3 @ 440 and 0.2 @ 660
$S -n -r 44100 -c 2 -b 16 -e signed-integer stereo-44k-i16.wav synth 0.25 sine 440 sine 660 remix 1v0.6 2v0.4
# 0.5 s at 44.1 kHz for the resampling accuracy test
$S -n -r 44100 -c 1 -b 16 -e signed-integer sine440-44k-0.5s.wav synth 0.5 sine 440 vol 0.5

# --- the tone `npm start` uses: 1.5 s, mono 16 kHz int16, 220 Hz sine at 0.5 plus light noise
$S -n -r 16000 -c 1 -b 16 -e signed-integer tone-16k.wav synth 1.5 sine 220 whitenoise remix 1v0.5,2v0.02

# --- compressed formats
$S -n -r 44100 -c 2 -b 16 -e signed-integer sine440-44k-stereo.flac synth 0.25 sine 440 sine 440 vol 0.5
$S -n -r 16000 -c 1 -b 24 sine440-16k-i24.flac synth 0.25 sine 440 vol 0.5
# MP3 through lame itself: it writes the Xing/LAME tag that carries encoder delay and padding (gapless length);
# 320 kb/s because lame's 128 kb/s mono drops this tone's amplitude by 5%; an ID3v2 tag goes in front.
$S -n -r 44100 -c 1 -b 16 -e signed-integer mp3-src.wav synth 0.5 sine 440 vol 0.5
lame --quiet -b 320 -m m --add-id3v2 --tt probe-tone mp3-src.wav sine440-44k.mp3 && rm mp3-src.wav
$S -n -r 16000 -c 1 sine440-16k.ogg synth 0.25 sine 440 vol 0.5

# --- crafted files (byte-level cases sox will not write), derived from the files above
node - <<'JS'
const fs = require('node:fs');
const wav = (f) => fs.readFileSync(f);
const chunk = (id, body) => {
  const h = Buffer.alloc(8); h.write(id, 0, 'latin1'); h.writeUInt32LE(body.length, 4);
  return Buffer.concat([h, body, body.length % 2 ? Buffer.alloc(1) : Buffer.alloc(0)]);
};
const riff = (...chunks) => {
  const body = Buffer.concat([Buffer.from('WAVE', 'latin1'), ...chunks]);
  const h = Buffer.alloc(8); h.write('RIFF', 0, 'latin1'); h.writeUInt32LE(body.length, 4);
  return Buffer.concat([h, body]);
};
// Splits a canonical 44-byte-header PCM file made by sox -t wavpcm into its fmt body and sample bytes.
const parts = (f) => {
  const b = wav(f);
  let p = 12, fmt, data;
  while (p + 8 <= b.length) {
    const id = b.toString('latin1', p, p + 4), n = b.readUInt32LE(p + 4);
    if (id === 'fmt ') fmt = b.subarray(p + 8, p + 8 + n);
    if (id === 'data') data = b.subarray(p + 8, p + 8 + n);
    p += 8 + n + (n % 2);
  }
  return { fmt, data };
};
const base = parts('sine440-16k-i16.wav');

// unknown chunks before and after fmt, one with an odd size (needs its pad byte), a LIST after data
fs.writeFileSync('odd-chunks.wav', riff(
  chunk('JUNK', Buffer.alloc(7, 0x20)), chunk('fmt ', base.fmt), chunk('bext', Buffer.from('abc')),
  chunk('data', base.data), chunk('LIST', Buffer.from('INFOISFT', 'latin1'))));
// streaming writers: RIFF and data sizes 0xFFFFFFFF, and 0
for (const [name, size] of [['streaming-ffffffff.wav', 0xffffffff], ['streaming-zero-size.wav', 0]]) {
  const b = riff(chunk('fmt ', base.fmt), chunk('data', base.data));
  b.writeUInt32LE(size, 4); b.writeUInt32LE(size, b.length - base.data.length - 4);
  fs.writeFileSync(name, b);
}

// RF64 (the >4 GiB WAV successor): sizes in a ds64 chunk, 0xFFFFFFFF in the RIFF and data headers
{ const ds64 = Buffer.alloc(28); ds64.writeBigUInt64LE(BigInt(4 + 36 + 8 + base.data.length), 0);
  ds64.writeBigUInt64LE(BigInt(base.data.length), 8); ds64.writeBigUInt64LE(BigInt(base.data.length / 2), 16);
  const b = riff(chunk('ds64', ds64), chunk('fmt ', base.fmt), chunk('data', base.data), chunk('LIST', Buffer.from('INFO', 'latin1')));
  b.write('RF64', 0, 'latin1'); b.writeUInt32LE(0xffffffff, 4);
  b.writeUInt32LE(0xffffffff, 12 + 8 + 28 + 8 + base.fmt.length + 4);
  fs.writeFileSync('rf64.wav', b); }

// --- broken files
fs.writeFileSync('empty.wav', Buffer.alloc(0));
fs.writeFileSync('truncated-header.wav', wav('sine440-16k-i16.wav').subarray(0, 30));
fs.writeFileSync('not-audio.wav', 'this is a text file, not a RIFF/WAVE file\n');
fs.writeFileSync('not-audio.mp3', Buffer.from('{"json": "pretending to be an mp3"}\n'));
// data chunk declares 2 GB but the file ends after 8000 bytes
{ const b = riff(chunk('fmt ', base.fmt), chunk('data', base.data)); b.writeUInt32LE(0x7ffffff0, b.length - base.data.length - 4); fs.writeFileSync('huge-data-size.wav', b); }
// fmt with an absurd channel count (65535) and zero sample rate
{ const f = Buffer.from(base.fmt); f.writeUInt16LE(65535, 2); fs.writeFileSync('bad-channels.wav', riff(chunk('fmt ', f), chunk('data', base.data))); }
{ const f = Buffer.from(base.fmt); f.writeUInt32LE(0, 4); fs.writeFileSync('zero-rate.wav', riff(chunk('fmt ', f), chunk('data', base.data))); }
// block align that disagrees with channels × bytes per sample
{ const f = Buffer.from(base.fmt); f.writeUInt16LE(3, 12); fs.writeFileSync('bad-block-align.wav', riff(chunk('fmt ', f), chunk('data', base.data))); }
// WAVE_FORMAT_EXTENSIBLE whose sub-format GUID is not a KSDATAFORMAT_SUBTYPE one
{ const p = parts('sine440-22k-i24.wav'); const f = Buffer.from(p.fmt); f[30] ^= 0xff;
  fs.writeFileSync('bad-guid.wav', riff(chunk('fmt ', f), chunk('data', p.data))); }
// FLAC whose STREAMINFO claims 2^35 samples (hostile: must be refused before decoding anything)
{ const b = Buffer.from(wav('sine440-16k-i24.flac')); const s = 8; // STREAMINFO body
  b[s + 13] = (b[s + 13] & 0xf0) | 0x08; b.writeUInt32BE(0, s + 14); fs.writeFileSync('huge-streaminfo.flac', b); }
// header only: a data chunk of size 0 means "to end of file" (streaming), so this one holds a single byte,
// less than one 16-bit frame -> zero samples
fs.writeFileSync('zero-samples.wav', riff(chunk('fmt ', base.fmt), chunk('data', Buffer.alloc(1))));
// no data chunk at all
fs.writeFileSync('no-data-chunk.wav', riff(chunk('fmt ', base.fmt)));
// float32 file with a NaN and an Inf sample
{ const p = parts('sine440-48k-f32.wav'); const d = Buffer.from(p.data);
  d.writeFloatLE(NaN, 4 * 100); d.writeFloatLE(Infinity, 4 * 200);
  fs.writeFileSync('nan-samples.wav', riff(chunk('fmt ', p.fmt), chunk('data', d))); }
// a FLAC file under a .wav name (format comes from the magic bytes)
fs.copyFileSync('sine440-16k-i24.flac', 'really-flac.wav');
// an MP3 cut in half (its Xing tag still promises the full length)
{ const b = wav('sine440-44k.mp3'); fs.writeFileSync('truncated.mp3', b.subarray(0, b.length >> 1)); }
// a FLAC file cut in half
{ const b = wav('sine440-44k-stereo.flac'); fs.writeFileSync('truncated.flac', b.subarray(0, 60)); }
JS

# 8-bit A-law (WAVE format code 6) is not supported
$S -n -r 8000 -c 1 -e a-law alaw.wav synth 0.1 sine 440 vol 0.5

# --- a folder tree for listAudioFiles / probe tests
mkdir -p nested/b nested/a/deep
cp sine440-16k-i16.wav nested/a/one.wav
cp sine440-16k-i24.flac nested/a/deep/two.FLAC
cp sine440-44k.mp3 nested/b/three.Mp3
cp sine440-16k.ogg nested/b/ignored.ogg
echo "not listed" > nested/b/notes.txt

du -sh .
