//! Every function a Go template may call, with its arity as in Go's builtins and
//! sprig's Go signatures (Argo's set: sprig's generic functions without `env`,
//! `expandenv` and `getHostByName`, plus Argo's `normalize`, `slugify`, `toYaml`,
//! `fromYaml` and `fromYamlArray`).
//!
//! The parser checks every call against this table, so a wrong argument count is a
//! parse error with the template's `line:col`; `lint` and the docs read it too.

/// How many arguments a function takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arity {
    /// Exactly this many.
    Fixed(u8),
    /// At least this many (a variadic Go signature).
    AtLeast(u8),
}

impl Arity {
    /// Whether `n` arguments fit.
    pub fn accepts(self, n: usize) -> bool {
        match self {
            Arity::Fixed(k) => n == usize::from(k),
            Arity::AtLeast(k) => n >= usize::from(k),
        }
    }

    /// Go's message for a call with `got` arguments.
    pub fn error(self, name: &str, got: usize) -> String {
        match self {
            Arity::Fixed(k) => format!("wrong number of args for {name}: want {k} got {got}"),
            Arity::AtLeast(k) => {
                format!("wrong number of args for {name}: want at least {k} got {got}")
            }
        }
    }
}

/// One template function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    /// Its name in templates.
    pub name: &'static str,
    /// Its arity.
    pub arity: Arity,
    /// Whether Prism implements it (others fail with "not supported by prism" when called).
    pub supported: bool,
}

const fn f(name: &'static str, n: u8) -> Function {
    Function {
        name,
        arity: Arity::Fixed(n),
        supported: true,
    }
}

const fn v(name: &'static str, min: u8) -> Function {
    Function {
        name,
        arity: Arity::AtLeast(min),
        supported: true,
    }
}

const fn no(name: &'static str, arity: Arity) -> Function {
    Function {
        name,
        arity,
        supported: false,
    }
}

use Arity::Fixed;

/// Every function.
pub const FUNCTIONS: &[Function] = &[
    f("add1", 1),
    f("add1f", 1),
    v("add", 0),
    v("addf", 0),
    f("adler32sum", 1),
    no("ago", Fixed(1)),
    v("all", 0),
    v("and", 1),
    v("any", 0),
    f("append", 2),
    f("atoi", 1),
    no("b32dec", Fixed(1)),
    no("b32enc", Fixed(1)),
    f("b64dec", 1),
    f("b64enc", 1),
    f("base", 1),
    no("bcrypt", Fixed(1)),
    v("biggest", 1),
    no("buildCustomCert", Fixed(2)),
    v("call", 1),
    f("camelcase", 1),
    v("cat", 0),
    f("ceil", 1),
    f("chunk", 2),
    f("clean", 1),
    v("coalesce", 0),
    f("compact", 1),
    v("concat", 0),
    f("contains", 2),
    f("date", 2),
    f("dateInZone", 3),
    f("dateModify", 2),
    f("date_in_zone", 3),
    f("date_modify", 2),
    no("decryptAES", Fixed(2)),
    f("deepCopy", 1),
    f("deepEqual", 2),
    v("default", 1),
    no("derivePassword", Fixed(5)),
    v("dict", 0),
    v("dig", 3),
    f("dir", 1),
    f("div", 2),
    v("divf", 1),
    no("duration", Fixed(1)),
    no("durationRound", Fixed(1)),
    f("empty", 1),
    no("encryptAES", Fixed(2)),
    v("eq", 1),
    f("ext", 1),
    no("fail", Fixed(1)),
    f("first", 1),
    f("float64", 1),
    f("floor", 1),
    f("fromJson", 1),
    f("fromYaml", 1),
    f("fromYamlArray", 1),
    no("genCA", Fixed(2)),
    no("genCAWithKey", Fixed(3)),
    no("genPrivateKey", Fixed(1)),
    no("genSelfSignedCert", Fixed(4)),
    no("genSelfSignedCertWithKey", Fixed(5)),
    no("genSignedCert", Fixed(5)),
    no("genSignedCertWithKey", Fixed(6)),
    f("ge", 2),
    f("get", 2),
    f("gt", 2),
    f("has", 2),
    f("hasKey", 2),
    f("hasPrefix", 2),
    f("hasSuffix", 2),
    f("hello", 0),
    v("html", 0),
    f("htmlDate", 1),
    f("htmlDateInZone", 2),
    no("htpasswd", Fixed(2)),
    f("indent", 2),
    v("index", 1),
    f("initial", 1),
    f("initials", 1),
    f("int", 1),
    f("int64", 1),
    f("isAbs", 1),
    f("join", 2),
    v("js", 0),
    f("kebabcase", 1),
    v("keys", 0),
    f("kindIs", 2),
    f("kindOf", 1),
    f("last", 1),
    f("le", 2),
    f("len", 1),
    v("list", 0),
    f("lower", 1),
    f("lt", 2),
    v("max", 1),
    v("maxf", 1),
    v("merge", 1),
    v("mergeOverwrite", 1),
    v("min", 1),
    v("minf", 1),
    f("mod", 2),
    v("mul", 1),
    v("mulf", 1),
    f("mustAppend", 2),
    f("mustChunk", 2),
    f("mustCompact", 1),
    f("mustDateModify", 2),
    f("mustDeepCopy", 1),
    f("mustFirst", 1),
    f("mustFromJson", 1),
    f("mustHas", 2),
    f("mustInitial", 1),
    f("mustLast", 1),
    v("mustMerge", 1),
    v("mustMergeOverwrite", 1),
    f("mustPrepend", 2),
    f("mustPush", 2),
    f("mustRegexFind", 2),
    f("mustRegexFindAll", 3),
    f("mustRegexMatch", 2),
    f("mustRegexReplaceAll", 3),
    f("mustRegexReplaceAllLiteral", 3),
    f("mustRegexSplit", 3),
    f("mustRest", 1),
    f("mustReverse", 1),
    v("mustSlice", 1),
    f("mustToDate", 2),
    f("mustToJson", 1),
    f("mustToPrettyJson", 1),
    f("mustToRawJson", 1),
    f("mustUniq", 1),
    v("mustWithout", 1),
    f("must_date_modify", 2),
    f("ne", 2),
    f("nindent", 2),
    f("normalize", 1),
    f("nospace", 1),
    f("not", 1),
    f("now", 0),
    v("omit", 1),
    v("or", 1),
    f("osBase", 1),
    f("osClean", 1),
    f("osDir", 1),
    f("osExt", 1),
    f("osIsAbs", 1),
    v("pick", 1),
    v("pluck", 1),
    f("plural", 3),
    f("prepend", 2),
    v("print", 0),
    v("printf", 1),
    v("println", 0),
    f("push", 2),
    v("quote", 0),
    f("randAlpha", 1),
    f("randAlphaNum", 1),
    f("randAscii", 1),
    no("randBytes", Fixed(1)),
    no("randInt", Fixed(2)),
    f("randNumeric", 1),
    f("regexFind", 2),
    f("regexFindAll", 3),
    f("regexMatch", 2),
    f("regexQuoteMeta", 1),
    f("regexReplaceAll", 3),
    f("regexReplaceAllLiteral", 3),
    f("regexSplit", 3),
    f("repeat", 2),
    f("replace", 3),
    f("rest", 1),
    f("reverse", 1),
    v("round", 2),
    f("semver", 1),
    f("semverCompare", 2),
    v("seq", 0),
    f("set", 3),
    f("sha1sum", 1),
    f("sha256sum", 1),
    no("sha512sum", Fixed(1)),
    no("shuffle", Fixed(1)),
    v("slice", 1),
    v("slugify", 0),
    f("snakecase", 1),
    f("sortAlpha", 1),
    f("split", 2),
    f("splitList", 2),
    f("splitn", 3),
    v("squote", 0),
    f("sub", 2),
    v("subf", 1),
    f("substr", 3),
    f("swapcase", 1),
    f("ternary", 3),
    f("title", 1),
    f("toDate", 2),
    f("toDecimal", 1),
    f("toJson", 1),
    f("toPrettyJson", 1),
    f("toRawJson", 1),
    f("toString", 1),
    f("toStrings", 1),
    f("toYaml", 1),
    f("trim", 1),
    f("trimAll", 2),
    f("trimPrefix", 2),
    f("trimSuffix", 2),
    f("trimall", 2),
    f("trunc", 2),
    v("tuple", 0),
    f("typeIs", 2),
    f("typeIsLike", 2),
    f("typeOf", 1),
    f("uniq", 1),
    f("unixEpoch", 1),
    f("unset", 2),
    f("until", 1),
    f("untilStep", 3),
    f("untitle", 1),
    f("upper", 1),
    no("urlJoin", Fixed(1)),
    no("urlParse", Fixed(1)),
    v("urlquery", 0),
    f("uuidv4", 0),
    f("values", 1),
    v("without", 1),
    f("wrap", 2),
    f("wrapWith", 3),
    no("abbrevboth", Fixed(3)),
    f("abbrev", 2),
];

/// The function called `name`, if templates have one.
pub fn lookup(name: &str) -> Option<&'static Function> {
    static INDEX: std::sync::OnceLock<std::collections::HashMap<&'static str, &'static Function>> =
        std::sync::OnceLock::new();
    INDEX
        .get_or_init(|| FUNCTIONS.iter().map(|f| (f.name, f)).collect())
        .get(name)
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Arity::AtLeast;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = FUNCTIONS.iter().map(|f| f.name).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    #[test]
    fn keys_takes_any_number_of_dicts() {
        // sprig: func keys(dicts ...map[string]interface{}) []string
        assert_eq!(lookup("keys").map(|f| f.arity), Some(AtLeast(0)));
    }
}
