// Where a JSON text first goes wrong, as line and column: V8's message gives no position for an
// unexpected token or an early end, and it quotes the text around it (which may hold a key).

/** Line and column (both from 1) of the first syntax error in `text`, or undefined when it parses. */
export function jsonErrorPosition(text: string): { line: number; column: number } | undefined {
  const offset = jsonErrorOffset(text);
  if (offset === undefined) return undefined;
  const before = text.slice(0, offset);
  return { line: before.split('\n').length, column: offset - before.lastIndexOf('\n') };
}

class Stop {
  constructor(at: number) {
    this.at = at;
  }
  at: number;
}

function jsonErrorOffset(text: string): number | undefined {
  let at = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const space = () => {
    while (at < text.length && ' \t\n\r'.includes(text[at]!)) at++;
  };
  const expect = (pattern: RegExp) => {
    pattern.lastIndex = at;
    const match = pattern.exec(text);
    if (!match) throw new Stop(at);
    at += match[0].length;
  };
  const list = (close: string, item: () => void) => {
    at++;
    space();
    if (text[at] === close) return void at++;
    for (;;) {
      item();
      space();
      if (text[at] === close) return void at++;
      if (text[at] !== ',') throw new Stop(at);
      at++;
    }
  };
  const value = (): void => {
    space();
    const char = text[at];
    if (char === '{') {
      list('}', () => {
        space();
        if (text[at] !== '"') throw new Stop(at);
        expect(STRING);
        space();
        if (text[at] !== ':') throw new Stop(at);
        at++;
        value();
      });
    } else if (char === '[') list(']', value);
    else if (char === '"') expect(STRING);
    else if (char === 't' || char === 'f' || char === 'n') expect(LITERAL);
    else expect(NUMBER);
  };
  try {
    value();
    space();
    return at < text.length ? at : undefined;
  } catch (error) {
    if (error instanceof Stop) return error.at;
    throw error;
  }
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: JSON forbids raw control characters in a string
const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const LITERAL = /true|false|null/y;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
