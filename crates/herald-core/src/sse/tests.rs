//! The spec's examples and the edge cases around them, each fed whole, split at every byte
//! and one byte at a time.

use super::*;

/// Every item `stream` yields, fed as `chunks`.
fn parse_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> (Vec<Item>, String) {
    let mut parser = Parser::new();
    let mut items = Vec::new();
    for chunk in chunks {
        parser.feed(chunk);
        while let Some(item) = parser.next_item() {
            items.push(item);
        }
    }
    (items, parser.last_event_id().to_owned())
}

/// The items of `stream`, checked to be the same however the stream is split.
fn parse(stream: &str) -> Vec<Item> {
    let bytes = stream.as_bytes();
    let whole = parse_chunks([bytes]);
    for at in 0..=bytes.len() {
        let (a, b) = bytes.split_at(at);
        assert_eq!(parse_chunks([a, b]), whole, "split at {at} of {stream:?}");
    }
    assert_eq!(
        parse_chunks(bytes.chunks(1)),
        whole,
        "byte by byte: {stream:?}"
    );
    whole.0
}

/// The events of `stream` as (type, data).
fn events(stream: &str) -> Vec<(String, String)> {
    parse(stream)
        .into_iter()
        .filter_map(|item| match item {
            Item::Event(e) => Some((e.event.into_owned(), e.data)),
            _ => None,
        })
        .collect()
}

fn message(data: &str) -> (String, String) {
    ("message".into(), data.into())
}

#[test]
fn the_introductions_three_messages() {
    let stream = "data: This is the first message.\n\n\
                  data: This is the second message, it\n\
                  data: has two lines.\n\n\
                  data: This is the third message.\n\n";
    assert_eq!(
        events(stream),
        [
            message("This is the first message."),
            message("This is the second message, it\nhas two lines."),
            message("This is the third message."),
        ]
    );
}

#[test]
fn event_types_add_and_remove() {
    let stream =
        "event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n";
    let got = events(stream);
    let want = [("add", "73857293"), ("remove", "2153"), ("add", "113411")];
    assert_eq!(got.len(), want.len());
    for ((event, data), (want_event, want_data)) in got.iter().zip(want) {
        assert_eq!((event.as_str(), data.as_str()), (want_event, want_data));
    }
}

#[test]
fn the_stock_ticker_is_one_message_of_three_lines() {
    assert_eq!(
        events("data: YHOO\ndata: +2\ndata: 10\n\n"),
        [message("YHOO\n+2\n10")]
    );
}

#[test]
fn the_test_stream_sets_then_clears_the_last_event_id() {
    let stream = ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n";
    let items = parse(stream);
    assert_eq!(
        items,
        [
            Item::Comment,
            Item::Event(Event {
                event: "message".into(),
                data: "first event".into(),
                id: Some("1".into()),
            }),
            Item::Event(Event {
                event: "message".into(),
                data: "second event".into(),
                id: Some(String::new()),
            }),
            Item::Event(Event {
                event: "message".into(),
                data: " third event".into(),
                id: None,
            }),
        ]
    );
    let mut parser = Parser::new();
    parser.feed(b"data: first event\nid: 1\n\n");
    assert!(parser.next_item().is_some());
    assert_eq!(parser.last_event_id(), "1");
    parser.feed(b"data:second event\nid\n\n");
    assert!(parser.next_item().is_some());
    assert_eq!(parser.last_event_id(), "", "`id` without a value clears it");
}

#[test]
fn empty_data_blocks_and_the_unterminated_last_block() {
    // The first block fires an empty event, the middle one a single newline; the last is
    // dropped because no blank line follows it.
    assert_eq!(
        events("data\n\ndata\ndata\n\ndata:"),
        [message(""), message("\n")]
    );
}

#[test]
fn one_leading_space_is_optional() {
    assert_eq!(
        events("data:test\n\ndata: test\n\n"),
        [message("test"), message("test")]
    );
    let with = parse("id: 5\ndata: x\n\n");
    let without = parse("id:5\ndata:x\n\n");
    assert_eq!(with, without);
    assert_eq!(
        events("data:  two\n\n"),
        [message(" two")],
        "only one is removed"
    );
}

#[test]
fn every_line_end_works_also_split_between_chunks() {
    let want = [message("a\nb"), message("c")];
    assert_eq!(events("data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n"), want);
    assert_eq!(events("data: a\rdata: b\r\rdata: c\r\r"), want);
    assert_eq!(events("data: a\ndata: b\r\n\rdata: c\n\r\n"), want);
    // A `\r` ending one chunk and the `\n` starting the next are one line end, not two.
    let (items, _) = parse_chunks([&b"data: a\r"[..], b"\ndata: b\r", b"\n\r", b"\n"]);
    assert_eq!(
        items,
        [Item::Event(Event {
            event: "message".into(),
            data: "a\nb".into(),
            id: None,
        })]
    );
}

#[test]
fn a_leading_bom_is_skipped_once() {
    assert_eq!(events("\u{FEFF}data: x\n\n"), [message("x")]);
    // A second BOM is part of the first line: a field named "\u{FEFF}data", ignored.
    assert_eq!(
        events("\u{FEFF}\u{FEFF}data: x\n\ndata: y\n\n"),
        [message("y")]
    );
}

#[test]
fn comments_retry_and_unknown_fields() {
    let items = parse(": hb\nretry: 2000\nretry: 2s\nretry:\nretry: -1\nfoo: bar\ndata : no\n\n");
    assert_eq!(
        items,
        [Item::Comment, Item::Retry(Duration::from_millis(2000))],
        "only an all-digit retry counts; `data ` (space before the colon) is another field"
    );
}

#[test]
fn an_id_with_nul_is_ignored() {
    let mut parser = Parser::new();
    parser.feed(b"id: 7\ndata: a\n\nid: 8\0x\ndata: b\n\n");
    let Some(Item::Event(a)) = parser.next_item() else {
        panic!("first event")
    };
    let Some(Item::Event(b)) = parser.next_item() else {
        panic!("second event")
    };
    assert_eq!(a.id.as_deref(), Some("7"));
    assert_eq!(b.id, None);
    assert_eq!(parser.last_event_id(), "7");
}

#[test]
fn an_event_without_data_is_not_dispatched_but_its_id_counts() {
    let mut parser = Parser::new();
    parser.feed(b"id: 9\nevent: status\n\ndata: x\n\n");
    let Some(Item::Event(ev)) = parser.next_item() else {
        panic!("the data event")
    };
    assert!(
        ev.is_message(),
        "the event type does not leak into the next event"
    );
    assert_eq!(ev.id, None);
    assert_eq!(parser.last_event_id(), "9");
}

#[test]
fn an_empty_event_field_means_message() {
    assert_eq!(events("event:\ndata: x\n\n"), [message("x")]);
}

#[test]
fn invalid_utf8_is_replaced() {
    let (items, _) = parse_chunks([&b"data: a\xFFb\n\n"[..]]);
    assert_eq!(
        items,
        [Item::Event(Event {
            event: "message".into(),
            data: "a\u{FFFD}b".into(),
            id: None,
        })]
    );
}

#[tokio::test]
async fn an_event_stream_reads_chunks_and_stops_at_the_end() {
    let chunks: Vec<Result<&[u8], ()>> = vec![Ok(b"id: 1\nda"), Ok(b"ta: x\n"), Ok(b"\ndata: cut")];
    let mut stream = EventStream::new(futures::stream::iter(chunks));
    let Some(Ok(Item::Event(ev))) = stream.next_item().await else {
        panic!("one event")
    };
    assert_eq!((ev.id.as_deref(), ev.data.as_str()), (Some("1"), "x"));
    assert_eq!(stream.last_event_id(), "1");
    assert!(
        stream.next_item().await.is_none(),
        "the unfinished event is dropped"
    );
}
