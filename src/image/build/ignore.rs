//! `.containerignore` / `.dockerignore`: which files of the build context
//! `COPY` and `ADD` never see. One pattern a line, `#` comments, `!` makes
//! an exception; the last pattern that matches a path decides. Patterns
//! are matched against the path from the context's root (`./`, leading and
//! trailing `/` and `..` cleaned away) with `*` (within a name), `?`,
//! `[a-z]` and `**` (any number of names); a pattern that matches a
//! folder matches everything in it. As docker and buildah read them.

/// The rules of one ignore file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ignore {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    /// The pattern's names, split on `/`.
    parts: Vec<String>,
    exception: bool,
}

/// A path cleaned as docker cleans patterns and paths: no `.`, no empty
/// names, `..` taking one back (never above the root).
pub(super) fn clean(p: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            x => out.push(x.to_string()),
        }
    }
    out
}

impl Ignore {
    /// The rules of an ignore file's text.
    pub fn parse(text: &str) -> Ignore {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let (exception, pat) = match l.strip_prefix('!') {
                    Some(p) => (true, p.trim()),
                    None => (false, l),
                };
                let parts = clean(pat);
                (!parts.is_empty()).then_some(Rule { parts, exception })
            })
            .collect();
        Ignore { rules }
    }

    /// Whether `path` (from the context's root) is left out.
    pub fn excludes(&self, path: &str) -> bool {
        let names = clean(path);
        if names.is_empty() {
            return false;
        }
        let mut out = false;
        for r in &self.rules {
            // A rule that matches the path or a folder above it.
            let hit = (1..=names.len()).any(|n| matches(&r.parts, &names[..n]));
            if hit {
                out = !r.exception;
            }
        }
        out
    }

    /// Whether a folder may hold a path an exception lets back in (then it
    /// must be walked even when it is excluded itself).
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.exception)
    }
}

/// Whether the pattern's names match the path's names, `**` standing for
/// any number of names.
pub(super) fn matches(pat: &[String], names: &[String]) -> bool {
    match pat.split_first() {
        None => names.is_empty(),
        Some((p, rest)) if p == "**" => (0..=names.len()).any(|skip| matches(rest, &names[skip..])),
        Some((p, rest)) => match names.split_first() {
            Some((n, more)) => glob(p, n) && matches(rest, more),
            None => false,
        },
    }
}

/// One name against one pattern name: `*`, `?`, `[...]` (`[!...]` or
/// `[^...]` negated, ranges), `\` escaping the next character.
fn glob(p: &str, s: &str) -> bool {
    let p: Vec<char> = p.chars().collect();
    let s: Vec<char> = s.chars().collect();
    glob_at(&p, &s)
}

fn glob_at(p: &[char], s: &[char]) -> bool {
    let Some((&c, rest)) = p.split_first() else {
        return s.is_empty();
    };
    match c {
        '*' => (0..=s.len()).any(|k| glob_at(rest, &s[k..])),
        '?' => !s.is_empty() && glob_at(rest, &s[1..]),
        '[' => {
            let Some(close) = rest.iter().position(|&x| x == ']') else {
                return s.first() == Some(&'[') && glob_at(rest, &s[1..]);
            };
            let Some(&ch) = s.first() else {
                return false;
            };
            let mut class = &rest[..close];
            let negated = matches!(class.first(), Some('!' | '^'));
            if negated {
                class = &class[1..];
            }
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= ch && ch <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == ch;
                    i += 1;
                }
            }
            hit != negated && glob_at(&rest[close + 1..], &s[1..])
        }
        '\\' if !rest.is_empty() => s.first() == Some(&rest[0]) && glob_at(&rest[1..], &s[1..]),
        c => s.first() == Some(&c) && glob_at(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_exceptions_and_folders_as_docker_reads_them() {
        let ig = Ignore::parse(
            "# build output\n\
             target\n\
             *.log\n\
             !keep.log\n\
             **/*.tmp\n\
             docs/[a-c]*.md\n\
             ./secret/\n\
             node_modules/**\n",
        );
        for (path, out) in [
            ("target", true),
            ("target/debug/app", true),
            ("src/target", false),
            ("build.log", true),
            ("keep.log", false),
            ("sub/build.log", false),
            ("a/b/c.tmp", true),
            ("x.tmp", true),
            ("docs/api.md", true),
            ("docs/design.md", false),
            ("secret/key", true),
            ("node_modules/x/y", true),
            ("src/main.rs", false),
            ("./target/../src/lib.rs", false),
        ] {
            assert_eq!(ig.excludes(path), out, "{path}");
        }
        assert!(ig.has_exceptions());
    }

    #[test]
    fn the_last_matching_rule_wins() {
        let ig = Ignore::parse("*.md\n!README*.md\nREADME-secret.md\n");
        assert!(ig.excludes("notes.md"));
        assert!(!ig.excludes("README.md"));
        assert!(ig.excludes("README-secret.md"));
        assert!(!Ignore::parse("").excludes("anything"));
    }

    #[test]
    fn globs() {
        assert!(glob("a?c", "abc") && !glob("a?c", "ac"));
        assert!(glob("[!x]y", "zy") && !glob("[!x]y", "xy"));
        assert!(glob("*.[ch]", "main.c") && !glob("*.[ch]", "main.o"));
        assert!(glob("\\*", "*") && !glob("\\*", "a"));
    }
}
