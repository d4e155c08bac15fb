// What a built binary is, read from its bytes (the release build and the tests both ask).

/** The Node version a Node executable was built as: its headers URL (process.release.headersUrl). */
export function embeddedNodeVersion(binary: Buffer): string | undefined {
  const text = binary.toString('latin1');
  const match = /nodejs\.org\/download\/release\/v(\d+\.\d+\.\d+)\/node-v\1-headers\.tar\.gz/.exec(text);
  return match?.[1];
}
