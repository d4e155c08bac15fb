// Mach-O code signatures, written and checked here (no Mac, no codesign, no fetched code).
// sign(): an ad-hoc signature, as `codesign --sign -` or Apple's linker makes one: a SuperBlob
// holding one CodeDirectory with a SHA-256 per 4 KiB page of everything before the signature,
// pointed at by LC_CODE_SIGNATURE at the end of __LINKEDIT. That is what an arm64 Mac's kernel
// checks page by page before it runs a binary. verify(): recomputes every page hash (and the
// hashes of the signature's own blobs) of every CodeDirectory, ad-hoc or Apple's. It does not check
// a CMS signature's certificate chain (a Developer ID): codesign --verify does that on the Mac
// runner (.github/workflows/release.yml).
import { createHash } from 'node:crypto';

const MH_MAGIC_64 = 0xfeedfacf;
const LC_SEGMENT_64 = 0x19;
const LC_CODE_SIGNATURE = 0x1d;
const CSMAGIC_EMBEDDED_SIGNATURE = 0xfade0cc0;
const CSMAGIC_CODEDIRECTORY = 0xfade0c02;
const CSMAGIC_REQUIREMENTS = 0xfade0c01;
const CSMAGIC_BLOBWRAPPER = 0xfade0b01;
const CS_ADHOC = 0x2;
const CS_EXECSEG_MAIN_BINARY = 0x1;
const CS_HASHTYPE_SHA256 = 2;
const PAGE_BITS = 12;
const CODE_DIRECTORY_HEADER = 88; // version 0x20400, with the exec segment fields
const CPU_TYPE_ARM64 = 0x0100000c;

interface Segment {
  name: string;
  /** Offset of the load command in the file. */
  at: number;
  vmsize: bigint;
  fileoff: bigint;
  filesize: bigint;
}

interface MachO {
  cputype: number;
  filetype: number;
  headerEnd: number;
  segments: Segment[];
  /** Offset of LC_CODE_SIGNATURE's load command, with what it points at. */
  signature?: { at: number; dataoff: number; datasize: number };
}

function parse(file: Buffer): MachO {
  if (file.length < 32 || file.readUInt32LE(0) !== MH_MAGIC_64) {
    throw new Error(
      file.readUInt32BE(0) === 0xcafebabe
        ? 'a universal (fat) Mach-O: sign each architecture on its own'
        : 'not a 64-bit little-endian Mach-O',
    );
  }
  const ncmds = file.readUInt32LE(16);
  const sizeofcmds = file.readUInt32LE(20);
  const macho: MachO = { cputype: file.readUInt32LE(4), filetype: file.readUInt32LE(12), headerEnd: 32 + sizeofcmds, segments: [] };
  let at = 32;
  for (let i = 0; i < ncmds; i++) {
    const cmd = file.readUInt32LE(at);
    const size = file.readUInt32LE(at + 4);
    if (size < 8 || at + size > macho.headerEnd) throw new Error(`load command ${i} runs past the header`);
    if (cmd === LC_SEGMENT_64) {
      const name = file
        .subarray(at + 8, at + 24)
        .toString('latin1')
        .replace(/\0.*$/s, '');
      macho.segments.push({
        name,
        at,
        vmsize: file.readBigUInt64LE(at + 32),
        fileoff: file.readBigUInt64LE(at + 40),
        filesize: file.readBigUInt64LE(at + 48),
      });
    } else if (cmd === LC_CODE_SIGNATURE) {
      macho.signature = { at, dataoff: file.readUInt32LE(at + 8), datasize: file.readUInt32LE(at + 12) };
    }
    at += size;
  }
  return macho;
}

function segment(macho: MachO, name: string): Segment {
  const found = macho.segments.find((s) => s.name === name);
  if (!found) throw new Error(`no ${name} segment`);
  return found;
}

const align = (n: number, to: number): number => Math.ceil(n / to) * to;

/**
 * An ad-hoc signed copy of `input` (a thin 64-bit Mach-O executable, signed or not; a previous
 * signature is replaced). `identifier` is the signing identifier, conventionally the program name.
 */
export function sign(input: Buffer, identifier: string): Buffer {
  const macho = parse(input);
  const linkedit = segment(macho, '__LINKEDIT');
  const text = segment(macho, '__TEXT');
  const linkeditEnd = Number(linkedit.fileoff + linkedit.filesize);
  let cmdAt: number;
  let codeLimit: number;
  const header = Buffer.from(input.subarray(0, macho.headerEnd + 16));
  if (macho.signature) {
    if (macho.signature.dataoff + macho.signature.datasize !== linkeditEnd || linkeditEnd !== input.length) {
      throw new Error('the existing signature is not at the end of __LINKEDIT and of the file');
    }
    cmdAt = macho.signature.at;
    codeLimit = macho.signature.dataoff;
  } else {
    if (linkeditEnd !== input.length) throw new Error('__LINKEDIT does not end the file');
    // Room for one more load command before the first section's data?
    const firstData = Math.min(
      ...macho.segments.filter((s) => s.filesize > 0n && s.fileoff > 0n).map((s) => Number(s.fileoff)),
      ...sectionOffsets(input, macho),
    );
    if (macho.headerEnd + 16 > firstData) throw new Error('no room for LC_CODE_SIGNATURE after the load commands');
    if (input.subarray(macho.headerEnd, macho.headerEnd + 16).some((b) => b !== 0))
      throw new Error('the space after the load commands is not empty');
    cmdAt = macho.headerEnd;
    header.writeUInt32LE(input.readUInt32LE(16) + 1, 16);
    header.writeUInt32LE(input.readUInt32LE(20) + 16, 20);
    header.writeUInt32LE(LC_CODE_SIGNATURE, cmdAt);
    header.writeUInt32LE(16, cmdAt + 4);
    codeLimit = align(input.length, 16);
  }
  const id = Buffer.from(`${identifier}\0`, 'utf8');
  const pages = Math.ceil(codeLimit / 2 ** PAGE_BITS);
  const cdLength = CODE_DIRECTORY_HEADER + id.length + pages * 32;
  const sigSize = 12 + 8 + cdLength;
  const total = codeLimit + sigSize;
  const pageSize = macho.cputype === CPU_TYPE_ARM64 ? 0x4000 : 0x1000;

  header.writeUInt32LE(codeLimit, cmdAt + 8);
  header.writeUInt32LE(sigSize, cmdAt + 12);
  header.writeBigUInt64LE(BigInt(total) - linkedit.fileoff, linkedit.at + 48);
  header.writeBigUInt64LE(BigInt(align(total - Number(linkedit.fileoff), pageSize)), linkedit.at + 32);

  const out = Buffer.alloc(total);
  input.copy(out, 0, 0, Math.min(input.length, codeLimit));
  header.copy(out, 0);

  const cd = Buffer.alloc(cdLength);
  cd.writeUInt32BE(CSMAGIC_CODEDIRECTORY, 0);
  cd.writeUInt32BE(cdLength, 4);
  cd.writeUInt32BE(0x20400, 8);
  cd.writeUInt32BE(CS_ADHOC, 12);
  cd.writeUInt32BE(CODE_DIRECTORY_HEADER + id.length, 16); // hashOffset
  cd.writeUInt32BE(CODE_DIRECTORY_HEADER, 20); // identOffset
  cd.writeUInt32BE(0, 24); // nSpecialSlots
  cd.writeUInt32BE(pages, 28);
  cd.writeUInt32BE(codeLimit, 32);
  cd.writeUInt8(32, 36); // hashSize
  cd.writeUInt8(CS_HASHTYPE_SHA256, 37);
  cd.writeUInt8(0, 38); // platform
  cd.writeUInt8(PAGE_BITS, 39);
  // 40 spare2, 44 scatterOffset, 48 teamOffset, 52 spare3, 56 codeLimit64: zero
  cd.writeBigUInt64BE(text.fileoff, 64); // execSegBase
  cd.writeBigUInt64BE(text.filesize, 72); // execSegLimit
  cd.writeBigUInt64BE(BigInt(macho.filetype === 2 ? CS_EXECSEG_MAIN_BINARY : 0), 80);
  id.copy(cd, CODE_DIRECTORY_HEADER);
  for (let page = 0; page < pages; page++) {
    const start = page << PAGE_BITS;
    createHash('sha256')
      .update(out.subarray(start, Math.min(start + (1 << PAGE_BITS), codeLimit)))
      .digest()
      .copy(cd, CODE_DIRECTORY_HEADER + id.length + page * 32);
  }
  const superBlob = out.subarray(codeLimit);
  superBlob.writeUInt32BE(CSMAGIC_EMBEDDED_SIGNATURE, 0);
  superBlob.writeUInt32BE(sigSize, 4);
  superBlob.writeUInt32BE(1, 8);
  superBlob.writeUInt32BE(0, 12); // slot: CodeDirectory
  superBlob.writeUInt32BE(20, 16);
  cd.copy(superBlob, 20);
  return out;
}

/** File offsets of every section with data, so a new load command never overwrites one. */
function sectionOffsets(file: Buffer, macho: MachO): number[] {
  const offsets: number[] = [];
  for (const seg of macho.segments) {
    const nsects = file.readUInt32LE(seg.at + 64);
    for (let i = 0; i < nsects; i++) {
      const offset = file.readUInt32LE(seg.at + 72 + i * 80 + 48);
      if (offset > 0) offsets.push(offset);
    }
  }
  return offsets;
}

export interface SignatureReport {
  /** Every page hash and blob hash of every CodeDirectory matched. */
  valid: boolean;
  problems: string[];
  identifier: string;
  /** Ad-hoc (no certificate) or carrying a CMS signature (Developer ID, Apple). */
  kind: 'adhoc' | 'cms';
  teamId?: string;
  /** The first CodeDirectory's hash, as `codesign -dvvv` prints CDHash. */
  cdhash: string;
  hashTypes: number[];
}

const HASHES: Record<number, { algorithm: string; size: number }> = {
  1: { algorithm: 'sha1', size: 20 },
  2: { algorithm: 'sha256', size: 32 },
  3: { algorithm: 'sha256', size: 20 },
  4: { algorithm: 'sha384', size: 48 },
};

function cstring(buffer: Buffer, at: number): string {
  const end = buffer.indexOf(0, at);
  return buffer.subarray(at, end < 0 ? buffer.length : end).toString('utf8');
}

/** Checks the embedded signature of a thin 64-bit Mach-O; throws only when there is none to check. */
export function verify(file: Buffer): SignatureReport {
  const macho = parse(file);
  if (!macho.signature) throw new Error('no LC_CODE_SIGNATURE: the binary is unsigned');
  const { dataoff, datasize } = macho.signature;
  const problems: string[] = [];
  const linkedit = segment(macho, '__LINKEDIT');
  if (dataoff + datasize > file.length) throw new Error('the signature runs past the end of the file');
  if (dataoff < Number(linkedit.fileoff) || dataoff + datasize > Number(linkedit.fileoff + linkedit.filesize))
    problems.push('the signature is not inside __LINKEDIT');
  const sig = file.subarray(dataoff, dataoff + datasize);
  if (sig.readUInt32BE(0) !== CSMAGIC_EMBEDDED_SIGNATURE) throw new Error('LC_CODE_SIGNATURE does not point at an embedded signature');
  const count = sig.readUInt32BE(8);
  const blobs = new Map<number, Buffer>();
  for (let i = 0; i < count; i++) {
    const type = sig.readUInt32BE(12 + i * 8);
    const offset = sig.readUInt32BE(16 + i * 8);
    const length = sig.readUInt32BE(offset + 4);
    blobs.set(type, sig.subarray(offset, offset + length));
  }
  const directories = [...blobs].filter(([type]) => type === 0 || (type >= 0x1000 && type < 0x1005)).map(([, blob]) => blob);
  if (directories.length === 0) throw new Error('the signature holds no CodeDirectory');
  let identifier = '';
  let teamId: string | undefined;
  const hashTypes: number[] = [];
  for (const cd of directories) {
    if (cd.readUInt32BE(0) !== CSMAGIC_CODEDIRECTORY) {
      problems.push('a CodeDirectory slot holds something else');
      continue;
    }
    const version = cd.readUInt32BE(8);
    const hashOffset = cd.readUInt32BE(16);
    const nSpecial = cd.readUInt32BE(24);
    const nCode = cd.readUInt32BE(28);
    const codeLimit = version >= 0x20300 && cd.readBigUInt64BE(56) !== 0n ? Number(cd.readBigUInt64BE(56)) : cd.readUInt32BE(32);
    const hashSize = cd.readUInt8(36);
    const hashType = cd.readUInt8(37);
    const pageBits = cd.readUInt8(39);
    identifier = cstring(cd, cd.readUInt32BE(20));
    if (version >= 0x20200 && cd.readUInt32BE(48) !== 0) teamId = cstring(cd, cd.readUInt32BE(48));
    hashTypes.push(hashType);
    const hash = HASHES[hashType];
    if (!hash || hash.size !== hashSize) {
      problems.push(`hash type ${hashType} with size ${hashSize} is unknown`);
      continue;
    }
    const digest = (data: Buffer): Buffer => createHash(hash.algorithm).update(data).digest().subarray(0, hash.size);
    if (codeLimit !== dataoff) problems.push(`the CodeDirectory covers ${codeLimit} bytes, the signature starts at ${dataoff}`);
    const page = pageBits === 0 ? codeLimit : 2 ** pageBits;
    if (nCode !== Math.ceil(codeLimit / page)) problems.push(`${nCode} page hashes for ${codeLimit} bytes`);
    let bad = 0;
    for (let i = 0; i < nCode; i++) {
      const start = i * page;
      const expected = cd.subarray(hashOffset + i * hashSize, hashOffset + (i + 1) * hashSize);
      if (!digest(file.subarray(start, Math.min(start + page, codeLimit))).equals(expected)) bad++;
    }
    if (bad) problems.push(`${bad} of ${nCode} pages do not match their ${hash.algorithm} hash`);
    // Special slots that name a blob of this signature: requirements (2), entitlements (5, 7).
    for (const slot of [2, 5, 7]) {
      if (slot > nSpecial) continue;
      const expected = cd.subarray(hashOffset - slot * hashSize, hashOffset - (slot - 1) * hashSize);
      const blob = blobs.get(slot);
      const zero = expected.every((b) => b === 0);
      if (!blob && !zero) problems.push(`special slot ${slot} has a hash but the signature has no such blob`);
      if (blob && !digest(blob).equals(expected)) problems.push(`special slot ${slot} does not match its blob`);
    }
  }
  const requirements = blobs.get(2);
  if (requirements && requirements.readUInt32BE(0) !== CSMAGIC_REQUIREMENTS) problems.push('slot 2 is not a requirements blob');
  const cms = blobs.get(0x10000);
  const signed = cms !== undefined && cms.readUInt32BE(0) === CSMAGIC_BLOBWRAPPER && cms.length > 8;
  const flags = directories[0]!.readUInt32BE(12);
  if (!signed && !(flags & CS_ADHOC)) problems.push('neither ad-hoc nor carrying a CMS signature');
  const first = directories[0]!;
  const firstHash = HASHES[first.readUInt8(37)] ?? HASHES[2]!;
  return {
    valid: problems.length === 0,
    problems,
    identifier,
    kind: signed ? 'cms' : 'adhoc',
    ...(teamId ? { teamId } : {}),
    cdhash: createHash(firstHash.algorithm).update(first).digest('hex').slice(0, 40),
    hashTypes,
  };
}
