//! An owned TOML tree in which every key and value keeps its byte span in the
//! source, so that validation can point at the exact line and column.

use std::borrow::Cow;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// Byte range in the source file.
pub type Span = Range<usize>;

/// A value with its span.
#[derive(Debug, Clone)]
pub struct Node<'a> {
    pub span: Span,
    pub kind: Kind<'a>,
}

/// The kinds of TOML value.
#[derive(Debug, Clone)]
pub enum Kind<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Datetime,
    Array(Vec<Node<'a>>),
    Table(Table<'a>),
}

/// One `key = value` entry of a table.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    pub key: Cow<'a, str>,
    pub key_span: Span,
    pub value: Node<'a>,
}

/// A table in source order.
#[derive(Debug, Clone, Default)]
pub struct Table<'a> {
    pub entries: Vec<Entry<'a>>,
}

impl<'a> Table<'a> {
    pub fn get(&self, key: &str) -> Option<&Entry<'a>> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// Merges `defaults` under `self`: a key present in `self` wins; where both
    /// hold a table, the tables are merged key by key (recursively); anything
    /// else (arrays, scalars, or a table against a non-table) is taken whole
    /// from `self`.
    pub fn merge_defaults(&mut self, defaults: &Table<'a>) {
        for d in &defaults.entries {
            match self.entries.iter_mut().find(|e| e.key == d.key) {
                None => self.entries.push(d.clone()),
                Some(own) => {
                    if let (Kind::Table(own_t), Kind::Table(def_t)) =
                        (&mut own.value.kind, &d.value.kind)
                    {
                        own_t.merge_defaults(def_t);
                    }
                }
            }
        }
    }
}

impl Kind<'_> {
    /// The TOML name of this kind, for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Str(_) => "a string",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a float",
            Kind::Bool(_) => "a boolean",
            Kind::Datetime => "a date-time",
            Kind::Array(_) => "an array",
            Kind::Table(_) => "a table",
        }
    }
}

/// A syntax error with its location.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub span: Span,
    pub message: String,
}

/// Parses a document; on syntax errors returns all that the parser could
/// recover (at least one).
pub fn parse(src: &str) -> Result<Node<'_>, Vec<SyntaxError>> {
    let (doc, errors) = DeTable::parse_recoverable(src);
    if !errors.is_empty() {
        return Err(errors
            .into_iter()
            .map(|e| SyntaxError {
                span: e.span().unwrap_or(0..0),
                message: first_line(e.message()),
            })
            .collect());
    }
    let span = doc.span();
    let mut bad = Vec::new();
    let table = convert_table(doc.into_inner(), &mut bad);
    if !bad.is_empty() {
        return Err(bad);
    }
    Ok(Node {
        span,
        kind: Kind::Table(table),
    })
}

fn first_line(msg: &str) -> String {
    msg.lines()
        .next()
        .unwrap_or("invalid TOML")
        .trim()
        .to_string()
}

fn convert_table<'a>(t: DeTable<'a>, bad: &mut Vec<SyntaxError>) -> Table<'a> {
    let entries = t
        .into_iter()
        .map(|(k, v)| {
            let key_span = k.span();
            Entry {
                key: k.into_inner(),
                key_span,
                value: convert(v, bad),
            }
        })
        .collect();
    Table { entries }
}

fn convert<'a>(v: Spanned<DeValue<'a>>, bad: &mut Vec<SyntaxError>) -> Node<'a> {
    let span = v.span();
    let kind = match v.into_inner() {
        DeValue::String(s) => Kind::Str(s),
        DeValue::Integer(i) => match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
            Ok(n) => Kind::Int(n),
            Err(_) => {
                bad.push(SyntaxError {
                    span: span.clone(),
                    message: format!("integer {} does not fit in 64 bits", i.as_str()),
                });
                Kind::Int(0)
            }
        },
        DeValue::Float(f) => match f.as_str().replace('_', "").parse::<f64>() {
            Ok(x) => Kind::Float(x),
            Err(_) => {
                bad.push(SyntaxError {
                    span: span.clone(),
                    message: format!("invalid float {}", f.as_str()),
                });
                Kind::Float(0.0)
            }
        },
        DeValue::Boolean(b) => Kind::Bool(b),
        DeValue::Datetime(_) => Kind::Datetime,
        DeValue::Array(a) => Kind::Array(a.into_iter().map(|x| convert(x, bad)).collect()),
        DeValue::Table(t) => Kind::Table(convert_table(t, bad)),
    };
    Node { span, kind }
}

/// Maps byte offsets to 1-based line and column (columns count characters).
#[derive(Debug)]
pub struct LineIndex<'a> {
    src: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(src: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { src, starts }
    }

    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let line = match self.starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let start = self.starts.get(line).copied().unwrap_or(0);
        let col = self
            .src
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(offset - start);
        (line + 1, col + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_spans_and_order() {
        let src = "b = 1\n[t]\nz = \"x\"\na = [1, 2]\n";
        let Node {
            kind: Kind::Table(t),
            ..
        } = parse(src).unwrap()
        else {
            panic!("not a table")
        };
        assert_eq!(t.entries[0].key, "b");
        let tt = match &t.get("t").unwrap().value.kind {
            Kind::Table(tt) => tt.clone(),
            _ => panic!(),
        };
        assert_eq!(tt.entries[0].key, "z");
        assert_eq!(tt.entries[1].key, "a");
        let idx = LineIndex::new(src);
        assert_eq!(idx.line_col(tt.entries[1].key_span.start), (4, 1));
        assert_eq!(idx.line_col(tt.entries[0].value.span.start), (3, 5));
    }

    #[test]
    fn syntax_errors_have_spans() {
        let errs = parse("a = \nb = 2\n").unwrap_err();
        assert!(!errs.is_empty());
        let errs = parse("a = 1\na = 2\n").unwrap_err();
        assert!(errs[0].message.contains("duplicate"), "{errs:?}");
    }

    #[test]
    fn merge_defaults_container_wins() {
        fn parse_t(s: &str) -> Table<'_> {
            match parse(s).unwrap().kind {
                Kind::Table(t) => t,
                _ => panic!(),
            }
        }
        let mut own = parse_t("x = 1\n[r]\nm = 2\n");
        let def = parse_t("x = 9\ny = 3\n[r]\nm = 7\np = 4\n");
        own.merge_defaults(&def);
        let keys: Vec<_> = own.entries.iter().map(|e| e.key.as_ref()).collect();
        assert_eq!(keys, ["x", "r", "y"]);
        assert!(matches!(own.get("x").unwrap().value.kind, Kind::Int(1)));
        let Kind::Table(r) = &own.get("r").unwrap().value.kind else {
            panic!()
        };
        assert!(matches!(r.get("m").unwrap().value.kind, Kind::Int(2)));
        assert!(matches!(r.get("p").unwrap().value.kind, Kind::Int(4)));
    }
}
