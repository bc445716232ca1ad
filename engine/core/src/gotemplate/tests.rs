//! Table tests: (template, data, expected output or error), expectations from Go's and
//! sprig's documented behaviour.

use super::*;
use serde_json::json;

fn run(t: &str, data: serde_json::Value, missing_error: bool) -> Result<String, String> {
    let tmpl = GoTemplate::parse(t, &Limits::default())?;
    tmpl.execute(
        &V::from_json(&data),
        missing_error,
        &Budget::new(Limits::default()),
    )
}

fn ok(t: &str, data: serde_json::Value) -> String {
    run(t, data, false).unwrap_or_else(|e| panic!("{t}: {e}"))
}

#[test]
fn language() {
    let d = json!({"name": "api", "env": "prod", "n": 3, "list": ["a", "b"], "m": {"k": "v", "a": 1},
                   "empty": {}, "t": true, "path": {"basename": "api", "segments": ["apps", "api"]}});
    let cases: &[(&str, &str)] = &[
        ("{{.name}}-{{.env}}", "api-prod"),
        ("{{.missing}}", "<no value>"),
        ("{{.missing.deeper}}", "<no value>"),
        ("{{.n}}", "3"),
        ("{{.m}}", "map[a:1 k:v]"),
        ("{{.list}}", "[a b]"),
        ("{{.path.basename}}/{{index .path.segments 0}}", "api/apps"),
        ("{{index .m \"nope\"}}", "<nil>"),
        ("{{if .t}}yes{{else}}no{{end}}", "yes"),
        ("{{if .empty}}yes{{else}}no{{end}}", "no"),
        (
            "{{if eq .env \"test\"}}t{{else if eq .env \"prod\"}}p{{else}}x{{end}}",
            "p",
        ),
        ("{{range $i, $v := .list}}{{$i}}={{$v}};{{end}}", "0=a;1=b;"),
        ("{{range .list}}{{.}}{{else}}none{{end}}", "ab"),
        ("{{range .nothing}}{{.}}{{else}}none{{end}}", "none"),
        ("{{range $k, $v := .m}}{{$k}}:{{$v}} {{end}}", "a:1 k:v "),
        (
            "{{range .list}}{{if eq . \"b\"}}{{break}}{{end}}{{.}}{{end}}",
            "a",
        ),
        (
            "{{range .list}}{{if eq . \"a\"}}{{continue}}{{end}}{{.}}{{end}}",
            "b",
        ),
        ("{{with .path}}{{.basename}}{{end}}", "api"),
        ("{{with .missing}}x{{else}}fallback{{end}}", "fallback"),
        ("{{$x := .name}}{{$x}}{{$x = \"web\"}}-{{$x}}", "api-web"),
        ("{{range .list}}{{$.name}}{{end}}", "apiapi"),
        (
            "{{define \"t\"}}[{{.}}]{{end}}{{template \"t\" .name}}",
            "[api]",
        ),
        ("{{block \"b\" .env}}<{{.}}>{{end}}", "<prod>"),
        ("a  {{- .name -}}  b", "aapib"),
        ("x{{/* a comment */}}y", "xy"),
        ("{{ .name | printf \"%s!\" }}", "api!"),
        ("{{ (index .list 1) }}", "b"),
        ("{{ len .list }} {{ len .name }} {{ len .m }}", "2 3 2"),
        (
            "{{ slice .list 1 }} {{ slice .list 0 1 }} {{ slice .list }}",
            "[b] [a] [a b]",
        ),
        (
            "{{ and 1 0 2 }} {{ or 0 \"\" \"x\" }} {{ not .t }}",
            "0 x false",
        ),
        ("{{ print 1 2 \"a\" 3 }}", "1 2a3"),
        ("{{ println \"a\" 1 }}", "a 1\n"),
        (
            "{{ printf \"%v %d %q %05.2f %x %t %s\" .m 7 \"q\" 3.14159 255 true .list }}",
            "map[a:1 k:v] 7 \"q\" 03.14 ff true [a b]",
        ),
        ("{{ printf \"%d\" .n }}", "%!d(float64=3)"),
        ("{{ printf \"%s %s\" \"a\" }}", "a %!s(MISSING)"),
        ("{{ printf \"%s\" \"a\" \"b\" }}", "a%!(EXTRA string=b)"),
        ("{{ printf \"%-4s|%4s\" \"a\" \"b\" }}", "a   |   b"),
        ("{{ eq .env \"dev\" \"prod\" }}", "true"),
        (
            "{{ lt 1 2 }} {{ ge \"b\" \"a\" }} {{ ne 1 2 }}",
            "true true true",
        ),
        ("{{ html \"<a href='x'>\" }}", "&lt;a href=&#39;x&#39;&gt;"),
        ("{{ js \"a'b<\" }}", "a\\'b\\u003C"),
        ("{{ urlquery \"a b&c\" }}", "a+b%26c"),
        ("{{ 0x1F }} {{ 1.5 }} {{ 'a' }} {{ -2 }}", "31 1.5 97 -2"),
        ("{{ `raw\\n` }}", "raw\\n"),
    ];
    for (t, want) in cases {
        assert_eq!(ok(t, d.clone()), *want, "template {t}");
    }
}

#[test]
fn errors() {
    let d = json!({"n": 3, "name": "api"});
    // Argo leaves these out of its function map: "not defined" when parsed, as Go says.
    assert_eq!(
        run("{{ env \"HOME\" }}", d.clone(), false).unwrap_err(),
        "1:1: function \"env\" not defined"
    );
    let cases: &[(&str, bool, &str)] = &[
        (
            "{{.missing}}",
            true,
            "1:1: executing at <.missing>: map has no entry for key \"missing\"",
        ),
        (
            "x\n  {{ eq .n 3 }}",
            false,
            "2:3: executing at <eq .n 3>: error calling eq: incompatible types for comparison",
        ),
        ("{{ nope 1 }}", false, "1:1: function \"nope\" not defined"),
        (
            "{{ genCA \"x\" 3 }}",
            false,
            "1:1: executing at <genCA \"x\" 3>: function \"genCA\" is not supported by prism",
        ),
        (
            "{{ .name.x }}",
            false,
            "1:1: executing at <.name.x>: can't evaluate field x in type string",
        ),
        ("{{ if .n }}", false, "1:1: unexpected EOF in if"),
        ("{{ .name ", false, "1:1: unclosed action"),
        ("{{ end }}", false, "1:1: unexpected {{end}}"),
        (
            "{{ index .name 9 }}",
            false,
            "1:1: executing at <index .name 9>: error calling index: index out of range: 9",
        ),
    ];
    for (t, missing, want) in cases {
        assert_eq!(
            run(t, d.clone(), *missing).unwrap_err(),
            *want,
            "template {t}"
        );
    }
}

#[test]
fn sprig_functions() {
    let d = json!({"name": "My App", "env": "", "n": 3, "list": ["b", "a", "b", ""], "m": {"a": {"b": "deep"}},
                   "json": "{\"k\": [1, 2]}", "yaml": "a: 1\nb: [x]"});
    let cases: &[(&str, &str)] = &[
        ("{{ default \"dev\" .env }} {{ default \"dev\" .missing }} {{ .name | default \"x\" }}", "dev dev My App"),
        ("{{ empty .env }} {{ empty .n }} {{ coalesce .env .missing \"c\" }}", "true false c"),
        ("{{ ternary \"a\" \"b\" true }}", "a"),
        ("{{ lower .name }} {{ upper .name }} {{ title \"hello world\" }}", "my app MY APP Hello World"),
        ("{{ trim \"  x \" }}|{{ trimPrefix \"My \" .name }}|{{ trimSuffix \"App\" .name }}|{{ trimAll \"$\" \"$5$\" }}", "x|App|My |5"),
        ("{{ replace \" \" \"-\" .name }} {{ trunc 2 .name }} {{ trunc -3 .name }} {{ substr 0 2 .name }}", "My-App My App My"),
        ("{{ contains \"App\" .name }} {{ hasPrefix \"My\" .name }} {{ hasSuffix \"x\" .name }}", "true true false"),
        ("{{ quote .name }} {{ squote .name }} {{ cat \"a\" .missing \"b\" }}", "\"My App\" 'My App' a b"),
        ("{{ indent 2 \"a\\nb\" }}|{{ nindent 2 \"a\" }}", "  a\n  b|\n  a"),
        ("{{ splitList \",\" \"a,b\" }} {{ (split \",\" \"a,b\")._1 }} {{ join \"-\" .list }}", "[a b] b b-a-b-"),
        ("{{ $d := dict \"k\" \"v\" \"n\" 1 }}{{ get $d \"k\" }} {{ hasKey $d \"n\" }} {{ keys $d }} {{ (set $d \"z\" 2).z }}", "v true [k n] 2"),
        ("{{ dig \"a\" \"b\" \"none\" .m }} {{ dig \"a\" \"x\" \"none\" .m }}", "deep none"),
        ("{{ merge (dict \"a\" 1) (dict \"a\" 2 \"b\" 3) }} {{ mergeOverwrite (dict \"a\" 1) (dict \"a\" 2) }}", "map[a:1 b:3] map[a:2]"),
        ("{{ first .list }} {{ last .list }} {{ rest .list }} {{ initial .list }}", "b  [a b ] [b a b]"),
        ("{{ uniq .list }} {{ compact .list }} {{ without .list \"b\" }} {{ has \"a\" .list }}", "[b a ] [b a b] [a ] true"),
        ("{{ sortAlpha .list }} {{ reverse (list 1 2) }} {{ append (list 1) 2 }} {{ prepend (list 1) 0 }}", "[ a b b] [2 1] [1 2] [0 1]"),
        ("{{ until 3 }} {{ untilStep 0 10 4 }}", "[0 1 2] [0 4 8]"),
        ("{{ add 1 2 .n }} {{ add1 .n }} {{ sub 5 2 }} {{ mul 2 3 }} {{ div 7 2 }} {{ mod 7 2 }} {{ max 1 5 2 }} {{ min 4 2 }}", "6 4 3 6 3 1 5 2"),
        ("{{ int \"12\" }} {{ float64 \"1.5\" }} {{ atoi \"x\" }} {{ toString 5 }} {{ toStrings (list 1 2) }}", "12 1.5 0 5 [1 2]"),
        ("{{ toJson .m }} {{ toJson \"<\" }} {{ toRawJson \"<\" }} {{ (fromJson .json).k }}", "{\"a\":{\"b\":\"deep\"}} \"\\u003c\" \"<\" [1 2]"),
        ("{{ toYaml .m }}|{{ (fromYaml .yaml).b }}|{{ fromYamlArray \"- 1\\n- 2\" }}", "a:\n  b: deep|[x]|[1 2]"),
        ("{{ b64enc \"hi\" }} {{ b64dec \"aGk=\" }}", "aGk= hi"),
        ("{{ repeat 3 \"ab\" }} {{ plural \"one\" \"many\" 2 }}", "ababab many"),
        ("{{ kebabcase \"FirstName\" }} {{ snakecase \"firstName\" }} {{ camelcase \"http_server\" }}", "first-name first_name HttpServer"),
        ("{{ normalize \"My_App\" }} {{ slugify \"Hello World!\" }}", "my-app hello-world"),
        ("{{ pluck \"a\" (dict \"a\" 1) (dict \"a\" 2) }}", "[1 2]"),
        ("{{ regexMatch \"^[a-z]+-[0-9]+$\" \"abc-12\" }} {{ regexMatch \"^x\" \"y\" }}", "true false"),
        ("{{ regexFind \"[0-9]+\" \"ab12cd34\" }} {{ regexFindAll \"[0-9]\" \"a1b2c3\" 2 }}", "12 [1 2]"),
        ("{{ regexReplaceAll \"a(x*)b\" \"-ab-axxb-\" \"${1}W\" }} {{ regexReplaceAllLiteral \"a(x*)b\" \"-ab-\" \"${1}\" }}", "-W-xxW- -${1}-"),
        ("{{ regexSplit \"z+\" \"pizza\" -1 }} {{ regexQuoteMeta \"1.5*\" }}", "[pi a] 1\\.5\\*"),
        ("{{ sha256sum \"hello\" }}", "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"),
        ("{{ sha1sum \"hello\" }} {{ adler32sum \"hello\" }}", "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d 103547413"),
        ("{{ seq 3 }}|{{ seq 2 0 }}|{{ seq 0 2 6 }}", "1 2 3|2 1 0|0 2 4 6"),
        ("{{ $d := dict \"a\" 1 }}{{ $_ := set $d \"b\" 2 }}{{ $_ := unset $d \"a\" }}{{ $d }}", "map[b:2]"),
        ("{{ $d := dict \"n\" (dict \"a\" 1) }}{{ $_ := set $d.n \"b\" 2 }}{{ $_ := merge $d (dict \"c\" 3) }}{{ $d }}", "map[c:3 n:map[a:1 b:2]]"),
        ("{{ hello }} {{ untitle \"Hello World\" }} {{ (splitn \"$\" 2 \"a$b$c\")._1 }} {{ all 1 \"a\" }} {{ any 0 \"\" }}", "Hello! hello world b$c true false"),
        ("{{ floor 1.7 }} {{ ceil 1.2 }} {{ round 3.14159 2 }} {{ addf 1.5 2 }} {{ divf 1 4 }} {{ maxf 1 2.5 }}", "1 2 3.14 3.5 0.25 2.5"),
        ("{{ concat (list 1) (list 2 3) }} {{ chunk 2 (list 1 2 3) }} {{ mustFirst (list 9) }} {{ push (list 1) 2 }}", "[1 2 3] [[1 2] [3]] 9 [1 2]"),
        ("{{ omit (dict \"a\" 1 \"b\" 2) \"a\" }} {{ pick (dict \"a\" 1 \"b\" 2) \"a\" }}", "map[b:2] map[a:1]"),
        ("{{ typeOf .n }} {{ kindOf .list }} {{ kindIs \"string\" .name }}", "float64 slice true"),
        ("{{ base \"a/b.txt\" }} {{ dir \"a/b.txt\" }} {{ ext \"a/b.txt\" }} {{ clean \"a/../b/./c\" }}", "b.txt a .txt b/c"),
        ("{{ nospace \"a b c\" }} {{ initials \"John Smith\" }} {{ swapcase \"aB\" }} {{ abbrev 5 \"hello world\" }}", "abc JS Ab he..."),
        ("{{ wrap 10 \"the quick brown fox\" }}", "the quick\nbrown fox"),
        ("{{ (semver \"v1.2.3-rc.1\").Minor }} {{ semverCompare \"^1.2\" \"1.4.0\" }} {{ semverCompare \"~1.2\" \"1.4.0\" }}", "2 true false"),
    ];
    for (t, want) in cases {
        assert_eq!(ok(t, d.clone()), *want, "template {t}");
    }
}

#[test]
fn random_functions_have_the_right_shape() {
    let d = json!({});
    let u = ok("{{ uuidv4 }}", d.clone());
    assert_eq!(u.len(), 36);
    assert_eq!(&u[14..15], "4", "version 4: {u}");
    let r = ok("{{ randAlphaNum 12 }}", d.clone());
    assert_eq!(r.len(), 12);
    assert!(r.chars().all(|c| c.is_ascii_alphanumeric()));
    assert!(ok("{{ randNumeric 8 }}", d)
        .chars()
        .all(|c| c.is_ascii_digit()));
}

#[test]
fn date_functions_in_utc() {
    let d = json!({});
    let cases: &[(&str, &str)] = &[
        ("{{ date \"2006-01-02 15:04\" 0 }}", "1970-01-01 00:00"),
        ("{{ toDate \"2006-01-02\" \"2024-02-29\" | date \"Mon Jan 2 2006\" }}", "Thu Feb 29 2024"),
        ("{{ toDate \"2006-01-02\" \"2024-02-29\" | unixEpoch }}", "1709164800"),
        ("{{ toDate \"2006-01-02\" \"2024-02-29\" | dateModify \"-1.5h\" | date \"2006-01-02T15:04:05Z07:00\" }}", "2024-02-28T22:30:00Z"),
        ("{{ toDate \"2006-01-02\" \"nope\" | htmlDate }}", "0001-01-01"),
        ("{{ toDate \"2006-01-02\" \"2024-02-29\" }}", "2024-02-29 00:00:00 +0000 UTC"),
    ];
    for (t, want) in cases {
        assert_eq!(ok(t, d.clone()), *want, "template {t}");
    }
    assert_eq!(ok("{{ now | date \"2006\" | len }}", d.clone()), "4");
    assert!(
        run("{{ dateInZone \"2006\" 0 \"Europe/Paris\" }}", d, false)
            .unwrap_err()
            .ends_with("time zone \"Europe/Paris\" is not supported by prism (UTC only)")
    );
}
