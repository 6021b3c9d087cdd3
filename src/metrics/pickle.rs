//! A minimal Python pickle reader for exactly what insightface's `.bin` verification packs hold:
//! a tuple of (list of encoded images as bytes, list of bools). Protocols 0–5 as far as those
//! values go: Python 2 `str` (`BINSTRING`, `SHORT_BINSTRING`) and Python 3 `bytes`, bools
//! (`NEWTRUE`/`NEWFALSE`, protocol 0's `I01`/`I00`), small ints, text, `None`, tuples, lists,
//! the memo and protocol 4 framing. Any other opcode (objects, globals, numpy arrays) is an
//! error naming the opcode and its byte offset: nothing is ever executed. Memory stays within a
//! small multiple of the input: memo copies share their bytes and text, and containers nest at
//! most [`MAX_DEPTH`] deep.

use std::rc::Rc;

/// How deep lists and tuples may nest (a `.bin` pack is a tuple of lists: 2). Deeper values are
/// an error rather than a recursion (drop, compare) that could overflow the stack.
pub const MAX_DEPTH: usize = 32;

/// A decoded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bytes(Rc<Vec<u8>>),
    Str(Rc<str>),
    Bool(bool),
    Int(i64),
    None,
    List(Vec<Value>),
    Tuple(Vec<Value>),
}

impl Value {
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Bytes(_) => "bytes",
            Value::Str(_) => "str",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::None => "None",
            Value::List(_) => "list",
            Value::Tuple(_) => "tuple",
        }
    }
}

/// A parse failure: the byte offset of the opcode and what went wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct PickleError {
    pub offset: usize,
    pub message: String,
}

enum Slot {
    Value(Value),
    Mark,
}

enum Memo {
    Value(Value),
    /// Lists and tuples are stored by reference in Python; a later GET of one is not supported.
    Container,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    op_at: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, message: impl Into<String>) -> PickleError {
        PickleError { offset: self.op_at, message: message.into() }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        if self.buf.len() - self.pos < n {
            return Err(self.err(format!(
                "truncated: needs {n} more bytes, {} left (an incomplete download?)",
                self.buf.len() - self.pos
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, PickleError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    fn line(&mut self) -> Result<&'a [u8], PickleError> {
        let rest = &self.buf[self.pos..];
        let end = rest.iter().position(|&b| b == b'\n').ok_or_else(|| self.err("truncated: unterminated line"))?;
        self.pos += end + 1;
        Ok(&rest[..end])
    }

    fn len(&mut self, n: u64) -> Result<usize, PickleError> {
        usize::try_from(n).map_err(|_| self.err("length does not fit in memory"))
    }
}

/// Decodes one pickled value from `bytes` (which must end right after its STOP opcode).
pub fn parse(bytes: &[u8]) -> Result<Value, PickleError> {
    let mut r = Reader { buf: bytes, pos: 0, op_at: 0 };
    let mut stack: Vec<Slot> = Vec::new();
    let mut memo: std::collections::HashMap<u64, Memo> = Default::default();
    loop {
        r.op_at = r.pos;
        let op = r.u8().map_err(|_| r.err("truncated: no STOP opcode ('.') at the end"))?;
        match op {
            0x80 => {
                let proto = r.u8()?;
                if proto > 5 {
                    return Err(r.err(format!("pickle protocol {proto} (supported: 0 to 5)")));
                }
            }
            0x95 => {
                r.u64()?;
            }
            b'.' => {
                let top = pop_value(&r, &mut stack)?;
                if !stack.is_empty() {
                    return Err(r.err("STOP with more than one value on the stack"));
                }
                if r.pos != bytes.len() {
                    return Err(r.err(format!("{} bytes after the pickle's STOP opcode", bytes.len() - r.pos)));
                }
                drop(memo);
                return Ok(top);
            }
            b'(' => stack.push(Slot::Mark),
            b']' => stack.push(Slot::Value(Value::List(Vec::new()))),
            b')' => stack.push(Slot::Value(Value::Tuple(Vec::new()))),
            b'N' => stack.push(Slot::Value(Value::None)),
            0x88 => stack.push(Slot::Value(Value::Bool(true))),
            0x89 => stack.push(Slot::Value(Value::Bool(false))),
            b'T' | b'B' => {
                let n = r.u32()? as u64;
                let n = r.len(n)?;
                let b = r.take(n)?;
                stack.push(Slot::Value(Value::Bytes(Rc::new(b.to_vec()))));
            }
            b'U' | b'C' => {
                let n = r.u8()? as usize;
                let b = r.take(n)?;
                stack.push(Slot::Value(Value::Bytes(Rc::new(b.to_vec()))));
            }
            0x8e => {
                let n = r.u64()?;
                let n = r.len(n)?;
                let b = r.take(n)?;
                stack.push(Slot::Value(Value::Bytes(Rc::new(b.to_vec()))));
            }
            b'X' | 0x8c | 0x8d => {
                let n = match op {
                    b'X' => r.u32()? as u64,
                    0x8c => r.u8()? as u64,
                    _ => r.u64()?,
                };
                let n = r.len(n)?;
                let b = r.take(n)?;
                let s = std::str::from_utf8(b).map_err(|_| r.err("text that is not UTF-8"))?;
                stack.push(Slot::Value(Value::Str(s.into())));
            }
            b'I' => {
                let line = r.line()?;
                let v = match line {
                    b"01" => Value::Bool(true),
                    b"00" => Value::Bool(false),
                    digits => Value::Int(
                        std::str::from_utf8(digits)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .ok_or_else(|| r.err("malformed INT"))?,
                    ),
                };
                stack.push(Slot::Value(v));
            }
            b'K' => {
                let v = r.u8()? as i64;
                stack.push(Slot::Value(Value::Int(v)));
            }
            b'M' => {
                let b = r.take(2)?;
                stack.push(Slot::Value(Value::Int(u16::from_le_bytes([b[0], b[1]]) as i64)));
            }
            b'J' => {
                let v = r.u32()? as i32 as i64;
                stack.push(Slot::Value(Value::Int(v)));
            }
            b'a' => {
                let item = pop_value(&r, &mut stack)?;
                nest(&r, std::slice::from_ref(&item))?;
                match stack.last_mut() {
                    Some(Slot::Value(Value::List(items))) => items.push(item),
                    _ => return Err(r.err("APPEND without a list below it")),
                }
            }
            b'e' => {
                let items = pop_to_mark(&r, &mut stack)?;
                nest(&r, &items)?;
                match stack.last_mut() {
                    Some(Slot::Value(Value::List(list))) => list.extend(items),
                    _ => return Err(r.err("APPENDS without a list below the mark")),
                }
            }
            b't' => {
                let items = pop_to_mark(&r, &mut stack)?;
                nest(&r, &items)?;
                stack.push(Slot::Value(Value::Tuple(items)));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(pop_value(&r, &mut stack)?);
                }
                items.reverse();
                nest(&r, &items)?;
                stack.push(Slot::Value(Value::Tuple(items)));
            }
            b'q' | b'r' | 0x94 | b'p' => {
                let key = match op {
                    b'q' => r.u8()? as u64,
                    b'r' => r.u32()? as u64,
                    b'p' => {
                        let l = r.line()?;
                        decimal(&r, l)?
                    }
                    _ => memo.len() as u64,
                };
                let entry = match stack.last() {
                    Some(Slot::Value(Value::List(_) | Value::Tuple(_))) => Memo::Container,
                    Some(Slot::Value(v)) => Memo::Value(v.clone()),
                    _ => return Err(r.err("memo PUT with no value on the stack")),
                };
                memo.insert(key, entry);
            }
            b'h' | b'j' | b'g' => {
                let key = match op {
                    b'h' => r.u8()? as u64,
                    b'j' => r.u32()? as u64,
                    _ => {
                        let l = r.line()?;
                        decimal(&r, l)?
                    }
                };
                match memo.get(&key) {
                    Some(Memo::Value(v)) => stack.push(Slot::Value(v.clone())),
                    Some(Memo::Container) => {
                        return Err(r.err("a shared reference to a list or tuple (not found in .bin packs)"))
                    }
                    None => return Err(r.err(format!("memo GET of key {key}, which was never PUT"))),
                }
            }
            other => {
                return Err(r.err(format!(
                    "unsupported pickle opcode 0x{other:02x} ({:?}); this reader handles the bytes, bools and \
                     lists of insightface .bin packs, not Python objects or numpy arrays",
                    other as char
                )))
            }
        }
    }
}

/// Checks that a container holding `items` nests at most [`MAX_DEPTH`] deep.
fn nest(r: &Reader, items: &[Value]) -> Result<(), PickleError> {
    fn depth(v: &Value) -> usize {
        match v {
            Value::List(items) | Value::Tuple(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }
    if 1 + items.iter().map(depth).max().unwrap_or(0) > MAX_DEPTH {
        return Err(r.err(format!("lists or tuples nested more than {MAX_DEPTH} deep (a .bin pack nests 2)")));
    }
    Ok(())
}

fn decimal(r: &Reader, line: &[u8]) -> Result<u64, PickleError> {
    std::str::from_utf8(line).ok().and_then(|s| s.parse().ok()).ok_or_else(|| r.err("malformed memo key"))
}

fn pop_value(r: &Reader, stack: &mut Vec<Slot>) -> Result<Value, PickleError> {
    match stack.pop() {
        Some(Slot::Value(v)) => Ok(v),
        Some(Slot::Mark) => Err(r.err("expected a value, found a MARK")),
        None => Err(r.err("stack underflow")),
    }
}

fn pop_to_mark(r: &Reader, stack: &mut Vec<Slot>) -> Result<Vec<Value>, PickleError> {
    let mut items = Vec::new();
    loop {
        match stack.pop() {
            Some(Slot::Value(v)) => items.push(v),
            Some(Slot::Mark) => break,
            None => return Err(r.err("no MARK on the stack")),
        }
    }
    items.reverse();
    Ok(items)
}
