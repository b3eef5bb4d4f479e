//! Feeds arbitrary request lines to the gateway's classifier (`app::policy::route::classify`): it
//! must never panic, and what it decides on must be stable: the canonical form it forwards reads
//! back as the same change (or blob delete), so the registry acts on exactly what was decided.
#![no_main]

use app::policy::route::{classify, Route};
use app::policy::{AttachmentList, ListEntries};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\n');
    let method = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    let query = parts.next();
    if let Ok(Route::DeleteBlob(delete)) = classify(method, path, query) {
        match classify(method, &delete.path, None) {
            Ok(Route::DeleteBlob(again)) => assert_eq!(again, delete, "the canonical form reads differently"),
            other => panic!("the canonical form of {delete:?} reads as {other:?}"),
        }
        assert!(delete.path.is_ascii(), "{delete:?}");
    }
    if let Ok(Route::Change(change)) = classify(method, path, query) {
        let (path, query) = match change.path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (change.path_and_query.as_str(), None),
        };
        match classify(method, path, query) {
            Ok(Route::Change(again)) => assert_eq!(again, change, "the canonical form reads differently"),
            other => panic!("the canonical form of {change:?} reads as {other:?}"),
        }
        assert!(change.path_and_query.is_ascii(), "{change:?}");
        // A PUT to an attachment list: the tag names that list exactly, and whatever the body,
        // reading it as one never panics.
        for tag in change.tags() {
            if let Some(list) = AttachmentList::of(&tag) {
                assert_eq!(list.tag(), tag.as_str(), "{change:?}");
                if let Ok(entries) = ListEntries::parse(list.kind(), data) {
                    assert!(entries.len() <= data.len(), "{entries:?}");
                }
            }
        }
    }
});
