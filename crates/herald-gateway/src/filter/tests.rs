use herald_core::cursor::{Cursor, Epoch};

use super::*;

fn frame(action: &str, json: &str) -> EventFrame {
    let subject = format!("herald.events.acme.jobs.{action}");
    EventFrame::new(Cursor::new(1, Epoch(1)), &subject, json.as_bytes()).unwrap()
}

fn filter(actions: Option<&[&str]>, wheres: &[&str]) -> Result<Filter, FilterError> {
    let actions: Option<Vec<String>> = actions.map(|a| a.iter().map(|s| s.to_string()).collect());
    let wheres: Vec<String> = wheres.iter().map(|s| s.to_string()).collect();
    Filter::parse(actions.as_deref(), &wheres)
}

fn matches(wheres: &[&str], json: &str) -> bool {
    filter(None, wheres)
        .unwrap()
        .matches(&frame("insert", json))
}

#[test]
fn the_default_lets_everything_through() {
    let f = Filter::default();
    assert!(f.is_empty());
    assert!(f.matches(&frame("delete", "[1]")));
    assert_eq!(Filter::from_pairs(&[]).unwrap(), f);
}

#[test]
fn actions_are_checked_without_the_body() {
    let f = filter(Some(&["insert, update", "read"]), &[]).unwrap();
    assert!(f.matches(&frame("insert", "{}")));
    assert!(f.matches(&frame("read", "{}")));
    assert!(!f.matches(&frame("delete", "{}")));
    let body = frame("update", r#"{"data":{}}"#);
    assert!(f.matches(&body));
    assert!(!body.is_parsed(), "no where: the body is not parsed");
}

#[test]
fn scalars_compare_as_documented() {
    let j = r#"{"data":{"s":"active","n":5,"f":5.5,"t":true,"z":null,"ns":"5","o":{"id":"u1"},"a":[7,"x"],"big":18446744073709551615}}"#;
    assert!(matches(&["data.s:active"], j));
    assert!(!matches(&["data.s:Active"], j));
    assert!(matches(&["data.n:5"], j));
    assert!(matches(&["data.n:5.0"], j));
    assert!(matches(&["data.n:5e0"], j));
    assert!(!matches(&["data.n:05"], j));
    assert!(!matches(&["data.n: 5"], j));
    assert!(matches(&["data.ns:5"], j), "a string field equals the text");
    assert!(
        !matches(&["data.ns:5.0"], j),
        "a string field is compared as text"
    );
    assert!(matches(&["data.f:5.5"], j));
    assert!(matches(&["data.t:true"], j));
    assert!(!matches(&["data.t:1"], j));
    assert!(matches(&["data.z:null"], j));
    assert!(!matches(&["data.missing:null"], j), "missing is not null");
    assert!(matches(&["data.o.id:u1"], j));
    assert!(!matches(&["data.o:u1"], j), "objects never match");
    assert!(!matches(&["data.a:7"], j), "arrays never match");
    assert!(matches(&["data.a.0:7", "data.a.1:x"], j));
    assert!(!matches(&["data.a.2:7"], j));
    assert!(matches(&["data.big:18446744073709551615"], j));
    assert!(!matches(&["data.big:18446744073709551614"], j));
    assert!(
        matches(&["data.s:active", "data.n:5"], j),
        "conditions are AND-ed"
    );
    assert!(!matches(&["data.s:active", "data.n:6"], j));
    assert!(matches(&["action:insert"], r#"{"action":"insert"}"#));
    assert!(matches(&["data.s:"], r#"{"data":{"s":""}}"#));
    assert!(
        matches(&["data.u:a:b"], r#"{"data":{"u":"a:b"}}"#),
        "the value is after the first colon"
    );
    assert!(
        !matches(&["data.s:active"], "[1]"),
        "a body that is not an object"
    );
}

#[test]
fn a_body_is_parsed_once_and_shared() {
    let f = filter(None, &["data.s:a"]).unwrap();
    let e = frame("insert", r#"{"data":{"s":"a"}}"#);
    assert!(!e.is_parsed());
    assert!(f.matches(&e));
    assert!(e.is_parsed());
    assert!(f.matches(&e));
}

#[test]
fn bad_filters_are_refused_precisely() {
    let err = |a: Option<&[&str]>, w: &[&str]| filter(a, w).unwrap_err().to_string();
    assert_eq!(
        err(Some(&[""]), &[]),
        "actions must name at least one action"
    );
    assert!(err(Some(&["in sert"]), &[]).starts_with("invalid action \"in sert\""));
    let many: Vec<String> = (0..17).map(|i| format!("a{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(err(Some(&many), &[]), "at most 16 actions, not 17");
    assert_eq!(
        err(None, &["a:1", "b:2", "c:3", "d:4", "e:5"]),
        "at most 4 where conditions, not 5"
    );
    assert!(err(None, &["data.status"]).starts_with("where must be path:value"));
    assert!(err(None, &["data..s:1"]).starts_with("invalid where path \"data..s\""));
    assert!(err(None, &[":1"]).starts_with("invalid where path \"\""));
    assert!(err(None, &["da ta:1"]).starts_with("invalid where path"));
    assert_eq!(
        err(None, &["a.b.c.d.e.f.g.h.i:1"]),
        "a where path has at most 8 segments, not 9"
    );
    let long = format!("data.s:{}", "x".repeat(250));
    assert_eq!(
        err(None, &[&long]),
        "a where condition is at most 256 characters, not 257"
    );
}

#[test]
fn query_pairs_combine_every_actions_and_where() {
    let pairs: Vec<(String, String)> = [
        ("topics", "jobs"),
        ("actions", "insert"),
        ("where", "data.s:a"),
        ("actions", "update"),
        ("where", "data.n:1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let f = Filter::from_pairs(&pairs).unwrap();
    assert_eq!(
        f,
        filter(Some(&["insert,update"]), &["data.s:a", "data.n:1"]).unwrap()
    );
}

#[test]
fn private_events_pass_only_for_their_audience_before_anything_else() {
    let ids: crate::frame::Audience = vec![Arc::from("u-42"), Arc::from("u-7")].into();
    let private = frame("insert", r#"{"data":{"s":"a"}}"#).with_audience(Some(ids));
    let f = filter(Some(&["insert"]), &["data.s:a"]).unwrap();
    assert!(!f.matches(&private), "no viewer: fails closed");
    assert!(!Filter::default().matches(&private));
    assert!(
        !private.is_parsed(),
        "refused on the header, before the body"
    );
    assert!(f.clone().for_viewer("u-7").matches(&private));
    assert!(Filter::default().for_viewer("u-42").matches(&private));
    assert!(!f.clone().for_viewer("u-4").matches(&private));
    assert!(
        !filter(Some(&["update"]), &[])
            .unwrap()
            .for_viewer("u-7")
            .matches(&private)
    );
    let public = frame("insert", r#"{"data":{"s":"a"}}"#);
    assert!(f.matches(&public) && f.for_viewer("anyone").matches(&public));
}
