//! A small unpickler for the `data.pkl` of a TorchScript archive: the module
//! tree with its attributes, and tensors as references into the archive's
//! `data/<key>` storages. It builds plain values and never calls anything:
//! the few callables PyTorch's pickles name (tensor rebuilding, OrderedDict,
//! typed lists) are interpreted, any other is kept as an opaque name.
//!
//! A crafted pickle can nest values deeply or copy one value many times
//! through the memo; both are capped, so no input exhausts the stack or memory.

use crate::zip::invalid;
use std::collections::HashMap;
use std::io;

/// Deeper than any module tree (the Silero model nests about 12 levels).
const MAX_DEPTH: u32 = 100;
/// Values created in all, copies from the memo included (the model has ~2,000).
const MAX_VALUES: u64 = 1_000_000;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// In pickle order (module attributes keep their order).
    Dict(Vec<(Value, Value)>),
    /// `module.name` of a GLOBAL that was not (yet) called.
    Global(String),
    /// A NEWOBJ instance; BUILD gives it its state (a module: a dict of attributes).
    Object {
        class: String,
        state: Box<Value>,
    },
    Storage(Storage),
    Tensor(TensorRef),
    /// What a callable we do not interpret returned: its name.
    Opaque(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Storage {
    /// The entry `data/<key>` holds the bytes.
    pub key: String,
    /// `FloatStorage`, `HalfStorage` ...
    pub dtype: String,
    pub numel: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    pub storage: Storage,
    /// In elements.
    pub offset: u64,
    pub size: Vec<u64>,
    /// In elements, per dimension.
    pub stride: Vec<u64>,
}

struct Node {
    value: Value,
    depth: u32,
    /// Values in this subtree, for the copy budget.
    count: u64,
}

impl Node {
    fn leaf(value: Value) -> Self {
        Node {
            value,
            depth: 1,
            count: 1,
        }
    }

    fn parent(value: Value, children: &[&Node]) -> Self {
        Node {
            value,
            depth: 1 + children.iter().map(|c| c.depth).max().unwrap_or(0),
            count: 1 + children.iter().map(|c| c.count).sum::<u64>(),
        }
    }
}

enum Item {
    Mark,
    Node(Node),
}

pub fn load(bytes: &[u8]) -> io::Result<Value> {
    Machine {
        bytes,
        pos: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
        created: 0,
    }
    .run()
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Item>,
    memo: HashMap<u32, (Value, u32, u64)>,
    created: u64,
}

impl<'a> Machine<'a> {
    fn run(mut self) -> io::Result<Value> {
        loop {
            let at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint
                }
                b'.' => return Ok(self.pop()?.value), // STOP
                b'(' => self.stack.push(Item::Mark),
                b'N' => self.push(Node::leaf(Value::None))?,
                0x88 => self.push(Node::leaf(Value::Bool(true)))?,
                0x89 => self.push(Node::leaf(Value::Bool(false)))?,
                b'J' => {
                    let v = i32::from_le_bytes(self.array()?);
                    self.push(Node::leaf(Value::Int(v as i64)))?
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Node::leaf(Value::Int(v as i64)))?
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.array()?);
                    self.push(Node::leaf(Value::Int(v as i64)))?
                }
                0x8a => {
                    let v = self.long1()?;
                    self.push(Node::leaf(Value::Int(v)))?
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.array()?);
                    self.push(Node::leaf(Value::Float(v)))?
                }
                b'X' => {
                    let len = u32::from_le_bytes(self.array()?) as usize;
                    self.string(len)?
                }
                0x8c => {
                    let len = self.u8()? as usize;
                    self.string(len)?
                }
                b')' => self.push(Node::leaf(Value::Tuple(Vec::new())))?,
                b't' => {
                    let items = self.pop_to_mark()?;
                    self.push_container(items, Value::Tuple)?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push_container(items, Value::Tuple)?
                }
                b']' => self.push(Node::leaf(Value::List(Vec::new())))?,
                b'a' => {
                    let item = self.pop()?;
                    self.extend_list(vec![item])?
                }
                b'e' => {
                    let items = self.pop_to_mark()?;
                    self.extend_list(items)?
                }
                b'}' => self.push(Node::leaf(Value::Dict(Vec::new())))?,
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.extend_dict(vec![key, value])?
                }
                b'u' => {
                    let items = self.pop_to_mark()?;
                    self.extend_dict(items)?
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Node::leaf(Value::Global(format!("{module}.{name}"))))?
                }
                0x93 => {
                    let name = self.pop_str()?;
                    let module = self.pop_str()?;
                    self.push(Node::leaf(Value::Global(format!("{module}.{name}"))))?
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let result = reduce(callable.value, args.value)?;
                    self.push(Node {
                        value: result,
                        depth: args.depth + 1,
                        count: args.count + 1,
                    })?
                }
                0x81 => {
                    let _args = self.pop()?;
                    let class = match self.pop()?.value {
                        Value::Global(name) => name,
                        other => return Err(invalid(format!("NEWOBJ of a non-class {other:?}"))),
                    };
                    self.push(Node::leaf(Value::Object {
                        class,
                        state: Box::new(Value::None),
                    }))?
                }
                b'b' => {
                    let state = self.pop()?;
                    let Some(Item::Node(object)) = self.stack.last_mut() else {
                        return Err(invalid("BUILD with nothing to build"));
                    };
                    let Value::Object { state: slot, .. } = &mut object.value else {
                        return Err(invalid("BUILD on something that is not an object"));
                    };
                    **slot = state.value;
                    object.depth = object.depth.max(state.depth + 1);
                    object.count += state.count;
                    check_depth(object.depth)?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let storage = persistent_storage(pid.value)?;
                    self.push(Node::leaf(Value::Storage(storage)))?
                }
                b'q' => {
                    let index = self.u8()? as u32;
                    self.memoize(index)?
                }
                b'r' => {
                    let index = u32::from_le_bytes(self.array()?);
                    self.memoize(index)?
                }
                0x94 => {
                    let index = self.memo.len() as u32;
                    self.memoize(index)?
                }
                b'h' => {
                    let index = self.u8()? as u32;
                    self.recall(index)?
                }
                b'j' => {
                    let index = u32::from_le_bytes(self.array()?);
                    self.recall(index)?
                }
                other => {
                    return Err(invalid(format!(
                        "unsupported pickle opcode 0x{other:02x} at byte {at}"
                    )))
                }
            }
        }
    }

    fn push(&mut self, node: Node) -> io::Result<()> {
        check_depth(node.depth)?;
        self.spend(1)?;
        self.stack.push(Item::Node(node));
        Ok(())
    }

    /// Counts values created or copied against the budget.
    fn spend(&mut self, values: u64) -> io::Result<()> {
        self.created = self.created.saturating_add(values);
        if self.created > MAX_VALUES {
            return Err(invalid("the pickle builds too many values"));
        }
        Ok(())
    }

    fn pop(&mut self) -> io::Result<Node> {
        match self.stack.pop() {
            Some(Item::Node(node)) => Ok(node),
            Some(Item::Mark) => Err(invalid("pickle pops a MARK as a value")),
            None => Err(invalid("pickle pops from an empty stack")),
        }
    }

    fn pop_str(&mut self) -> io::Result<String> {
        match self.pop()?.value {
            Value::Str(s) => Ok(s),
            other => Err(invalid(format!("expected a string, found {other:?}"))),
        }
    }

    fn pop_to_mark(&mut self) -> io::Result<Vec<Node>> {
        let mut items = Vec::new();
        loop {
            match self.stack.pop() {
                Some(Item::Mark) => break,
                Some(Item::Node(node)) => items.push(node),
                None => return Err(invalid("pickle has no MARK to pop to")),
            }
        }
        items.reverse();
        Ok(items)
    }

    fn push_container(
        &mut self,
        items: Vec<Node>,
        make: fn(Vec<Value>) -> Value,
    ) -> io::Result<()> {
        let refs: Vec<&Node> = items.iter().collect();
        let shape = Node::parent(Value::None, &refs);
        let values = items.into_iter().map(|n| n.value).collect();
        self.push(Node {
            value: make(values),
            ..shape
        })
    }

    fn top_container(&mut self) -> io::Result<&mut Node> {
        match self.stack.last_mut() {
            Some(Item::Node(node)) => Ok(node),
            _ => Err(invalid("pickle appends to nothing")),
        }
    }

    fn grow(node: &mut Node, items: &[Node]) -> io::Result<()> {
        for item in items {
            node.depth = node.depth.max(item.depth + 1);
            node.count += item.count;
        }
        check_depth(node.depth)
    }

    fn extend_list(&mut self, items: Vec<Node>) -> io::Result<()> {
        let list = self.top_container()?;
        Self::grow(list, &items)?;
        match &mut list.value {
            Value::List(values) => values.extend(items.into_iter().map(|n| n.value)),
            _ => return Err(invalid("pickle appends to something that is not a list")),
        }
        Ok(())
    }

    fn extend_dict(&mut self, items: Vec<Node>) -> io::Result<()> {
        if !items.len().is_multiple_of(2) {
            return Err(invalid("pickle sets a dict key without a value"));
        }
        let dict = self.top_container()?;
        Self::grow(dict, &items)?;
        let Value::Dict(pairs) = &mut dict.value else {
            return Err(invalid("pickle sets items on something that is not a dict"));
        };
        let mut values = items.into_iter().map(|n| n.value);
        while let (Some(k), Some(v)) = (values.next(), values.next()) {
            pairs.push((k, v));
        }
        Ok(())
    }

    fn memoize(&mut self, index: u32) -> io::Result<()> {
        let Some(Item::Node(top)) = self.stack.last() else {
            return Err(invalid("pickle memoizes nothing"));
        };
        let entry = (top.value.clone(), top.depth, top.count);
        self.spend(entry.2)?;
        self.memo.insert(index, entry);
        Ok(())
    }

    fn recall(&mut self, index: u32) -> io::Result<()> {
        let (value, depth, count) = self
            .memo
            .get(&index)
            .ok_or_else(|| invalid(format!("pickle recalls memo {index}, never stored")))?;
        // A copy counts as many values as it holds: no blow-up through the memo.
        let copied = count.saturating_sub(1);
        let node = Node {
            value: value.clone(),
            depth: *depth,
            count: *count,
        };
        self.spend(copied)?;
        self.push(node)
    }

    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| invalid("pickle ends early (truncated file?)"))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn long1(&mut self) -> io::Result<i64> {
        let n = self.u8()? as usize;
        if n > 8 {
            return Err(invalid("pickle integer wider than 64 bits"));
        }
        let bytes = self.take(n)?;
        let mut buf = if bytes.last().is_some_and(|b| b & 0x80 != 0) {
            [0xff; 8]
        } else {
            [0; 8]
        };
        buf[..n].copy_from_slice(bytes);
        Ok(i64::from_le_bytes(buf))
    }

    fn string(&mut self, len: usize) -> io::Result<()> {
        let bytes = self.take(len)?;
        let text = std::str::from_utf8(bytes).map_err(|_| invalid("pickle string is not UTF-8"))?;
        self.push(Node::leaf(Value::Str(text.to_owned())))
    }

    /// A GLOBAL operand: text up to a newline.
    fn line(&mut self) -> io::Result<String> {
        let rest = &self.bytes[self.pos..];
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| invalid("pickle GLOBAL without a newline"))?;
        let text =
            std::str::from_utf8(&rest[..len]).map_err(|_| invalid("pickle GLOBAL is not UTF-8"))?;
        self.pos += len + 1;
        Ok(text.to_owned())
    }
}

fn check_depth(depth: u32) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(invalid(format!(
            "the pickle nests values deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok(())
}

/// `('storage', <class>, key, location, numel)`: PyTorch's persistent id of a storage.
fn persistent_storage(pid: Value) -> io::Result<Storage> {
    let Value::Tuple(parts) = pid else {
        return Err(invalid("persistent id is not a tuple"));
    };
    match parts.as_slice() {
        [Value::Str(kind), Value::Global(class), Value::Str(key), _location, Value::Int(numel)]
            if kind == "storage" && *numel >= 0 =>
        {
            Ok(Storage {
                key: key.clone(),
                dtype: class.rsplit('.').next().unwrap_or(class).to_owned(),
                numel: *numel as u64,
            })
        }
        other => Err(invalid(format!("unexpected persistent id {other:?}"))),
    }
}

fn reduce(callable: Value, args: Value) -> io::Result<Value> {
    let Value::Global(name) = callable else {
        return Err(invalid(format!("REDUCE of a non-callable {callable:?}")));
    };
    let Value::Tuple(mut args) = args else {
        return Err(invalid(format!(
            "REDUCE of {name} without an argument tuple"
        )));
    };
    Ok(match name.as_str() {
        "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_tensor" => {
            Value::Tensor(tensor(&name, &args)?)
        }
        "torch._utils._rebuild_parameter" if !args.is_empty() => args.swap_remove(0),
        "collections.OrderedDict" if args.is_empty() => Value::Dict(Vec::new()),
        "torch.jit._pickle.build_intlist"
        | "torch.jit._pickle.build_doublelist"
        | "torch.jit._pickle.build_boollist"
        | "torch.jit._pickle.build_tensorlist"
        | "torch.jit._pickle.build_genericlist"
            if args.len() == 1 =>
        {
            args.swap_remove(0)
        }
        _ => Value::Opaque(name),
    })
}

/// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`.
fn tensor(name: &str, args: &[Value]) -> io::Result<TensorRef> {
    let bad = || invalid(format!("{name} with unexpected arguments {args:?}"));
    let [Value::Storage(storage), Value::Int(offset), Value::Tuple(size), Value::Tuple(stride), ..] =
        args
    else {
        return Err(bad());
    };
    let ints = |values: &[Value]| -> Option<Vec<u64>> {
        values
            .iter()
            .map(|v| match v {
                Value::Int(i) if *i >= 0 => Some(*i as u64),
                _ => None,
            })
            .collect()
    };
    let (size, stride) = (ints(size).ok_or_else(bad)?, ints(stride).ok_or_else(bad)?);
    if size.len() != stride.len() || *offset < 0 {
        return Err(bad());
    }
    Ok(TensorRef {
        storage: storage.clone(),
        offset: *offset as u64,
        size,
        stride,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::Pickler;

    #[test]
    fn a_module_with_a_tensor_attribute() {
        let mut p = Pickler::new();
        p.object_start("__torch__.M");
        p.str("weight");
        p.tensor("0", 6, 0, &[2, 3], &[3, 1]);
        p.str("training");
        p.raw(&[0x89]);
        p.object_end();
        let value = load(&p.finish()).unwrap();
        let Value::Object { class, state } = value else {
            panic!("{value:?}")
        };
        assert_eq!(class, "__torch__.M");
        let Value::Dict(attrs) = *state else { panic!() };
        assert_eq!(attrs[0].0, Value::Str("weight".into()));
        let Value::Tensor(t) = &attrs[0].1 else {
            panic!("{:?}", attrs[0].1)
        };
        assert_eq!(
            (t.storage.key.as_str(), t.storage.dtype.as_str()),
            ("0", "FloatStorage")
        );
        assert_eq!(
            (t.size.as_slice(), t.stride.as_slice()),
            (&[2u64, 3][..], &[3u64, 1][..])
        );
        assert_eq!(attrs[1].1, Value::Bool(false));
    }

    #[test]
    fn memo_recalls_copies_and_integers_decode() {
        // "k" memoized as 0, recalled; BININT -5, BININT2 60000, LONG1 -2.
        let mut bytes = vec![0x80, 2, b'(', b'X', 1, 0, 0, 0, b'k', b'q', 0, b'h', 0];
        bytes.extend([
            b'J', 0xfb, 0xff, 0xff, 0xff, b'M', 0x60, 0xea, 0x8a, 1, 0xfe, b't', b'.',
        ]);
        let value = load(&bytes).unwrap();
        let k = Value::Str("k".into());
        assert_eq!(
            value,
            Value::Tuple(vec![
                k.clone(),
                k,
                Value::Int(-5),
                Value::Int(60000),
                Value::Int(-2)
            ])
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        // 100,000 nested lists: ] ] ] ... a a a .
        let n = 100_000;
        let mut bytes = vec![0x80, 2];
        bytes.extend(std::iter::repeat_n(b']', n));
        bytes.extend(std::iter::repeat_n(b'a', n - 1));
        bytes.push(b'.');
        let err = load(&bytes).unwrap_err();
        assert!(err.to_string().contains("deeper"), "{err}");
    }

    #[test]
    fn memo_doubling_is_refused_not_a_memory_blow_up() {
        // x = [x, x] thirty times: 2^30 values from 200 bytes.
        let mut bytes = vec![0x80, 2, b']', b'q', 0];
        for _ in 0..30 {
            bytes.extend([b']', b'(', b'h', 0, b'h', 0, b'e', b'q', 0]);
        }
        bytes.push(b'.');
        let err = load(&bytes).unwrap_err();
        assert!(err.to_string().contains("too many values"), "{err}");
    }

    #[test]
    fn malformed_pickles_fail_with_a_reason() {
        for (bytes, reason) in [
            (&b"\x80\x02"[..], "ends early"),
            (b"\x80\x02a.", "empty stack"),
            (b"\x80\x02h\x07.", "never stored"),
            (b"\x80\x02\xff", "opcode 0xff"),
            (b"\x80\x02(t(.", "MARK"),
            (b"\x80\x02Nb.", "nothing to build"),
        ] {
            let err = load(bytes).unwrap_err();
            assert!(err.to_string().contains(reason), "{bytes:?}: {err}");
        }
    }

    #[test]
    fn no_truncation_or_flipped_byte_panics() {
        let mut p = Pickler::new();
        p.object_start("__torch__.M");
        p.str("w");
        p.tensor("0", 6, 0, &[2, 3], &[3, 1]);
        p.object_end();
        let good = p.finish();
        for len in 0..good.len() {
            let _ = load(&good[..len]);
        }
        for at in 0..good.len() {
            for byte in [0x00, 0x28, 0x4a, 0x68, 0x71, 0x81, 0xff] {
                let mut bad = good.clone();
                bad[at] = byte;
                let _ = load(&bad); // an error or a value, never a panic
            }
        }
    }

    #[test]
    fn unknown_callables_stay_opaque_and_tensor_arguments_are_checked() {
        let mut bytes = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.".to_vec();
        assert_eq!(load(&bytes).unwrap(), Value::Opaque("os.system".into()));
        // _rebuild_tensor_v2 with a negative size.
        bytes =
            b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n(NK\x00J\xff\xff\xff\xff\x85K\x01\x85tR."
                .to_vec();
        assert!(load(&bytes).is_err());
    }
}
