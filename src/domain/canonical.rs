//! The canonical form a record's content hash is taken over: JSON with
//! sorted keys, where a member that holds nothing (null, "", false, 0, [],
//! {}) is left out and decimal amounts are normalised ("100.0" and
//! "100.00" are one amount). A field added later as optional or
//! defaulted serialises to nothing on the records that lack it, so old
//! records and their resubmissions keep hashing equal.

use rust_decimal::Decimal;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Members whose string values are decimals (money amounts, journal
/// sides, rates), compared by value.
const DECIMAL_KEYS: [&str; 4] = ["amount", "debit", "credit", "exchange_rate"];

/// SHA-256 of the canonical form of a payload: a record serialised now, or
/// one stored by an earlier version.
pub fn hash_payload(payload: &Value) -> [u8; 32] {
    Sha256::digest(canonical_json(payload).as_bytes()).into()
}

/// The content hash of a stored record's payload, as `Record::content_hash`
/// takes it: its canonical form without the version's time
/// (`source_update_time`), which orders versions but is not content.
pub fn hash_record_payload(payload: &Value) -> [u8; 32] {
    match payload {
        Value::Object(map) if map.contains_key(VERSION_TIME) => {
            let mut content = map.clone();
            content.remove(VERSION_TIME);
            hash_payload(&Value::Object(content))
        }
        _ => hash_payload(payload),
    }
}

/// The member of a record payload that orders versions.
const VERSION_TIME: &str = "source_update_time";

/// The canonical text of a payload.
pub fn canonical_json(payload: &Value) -> String {
    let mut out = String::new();
    write(&mut out, payload, None);
    out
}

fn write(out: &mut String, v: &Value, key: Option<&str>) {
    match v {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> =
                map.iter().filter(|(_, v)| !is_empty(v)).collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write(out, v, Some(k));
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, item, None);
            }
            out.push(']');
        }
        Value::String(s) if key.is_some_and(|k| DECIMAL_KEYS.contains(&k)) => {
            let normal = s.parse::<Decimal>().map(|d| d.normalize().to_string());
            out.push_str(&Value::String(normal.unwrap_or_else(|_| s.clone())).to_string());
        }
        other => out.push_str(&other.to_string()),
    }
}

/// What a defaulted field holds when nobody set it.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_empty),
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    use super::*;
    use crate::domain::record::Record;
    use crate::domain::testkit::*;

    /// An invoice kind as stored by an earlier version...
    #[derive(Serialize)]
    struct InvoiceV1 {
        total: String,
        lines: Vec<String>,
    }

    /// ...and the same kind after a release added optional fields.
    #[derive(Serialize, Deserialize)]
    struct InvoiceV2 {
        total: String,
        lines: Vec<String>,
        #[serde(default)]
        purchase_order: Option<String>,
        #[serde(default)]
        notes: Vec<String>,
        #[serde(default)]
        terms: String,
    }

    fn serde_hash<T: Serialize>(v: &T) -> Vec<u8> {
        // The hash as it was: SHA-256 of the serde JSON.
        Sha256::digest(serde_json::to_vec(v).unwrap()).to_vec()
    }

    #[test]
    fn an_old_record_and_its_resubmission_hash_equal_after_a_field_is_added() {
        let stored = serde_json::to_value(InvoiceV1 {
            total: "100.00".into(),
            lines: vec!["TEE".into()],
        })
        .unwrap();
        // The resubmission is read by the new code, so it has the new fields.
        let resubmitted: InvoiceV2 = serde_json::from_value(stored.clone()).unwrap();
        let now = serde_json::to_value(&resubmitted).unwrap();
        assert_eq!(hash_payload(&stored), hash_payload(&now));
        // The serde JSON hash told them apart: a spurious conflict.
        assert_ne!(serde_hash(&stored), serde_hash(&resubmitted));
        // A real change still changes the hash.
        let mut changed = resubmitted;
        changed.purchase_order = Some("PO-7".into());
        assert_ne!(
            hash_payload(&stored),
            hash_payload(&serde_json::to_value(&changed).unwrap())
        );
    }

    #[test]
    fn a_stored_record_without_an_optional_member_hashes_as_its_record() {
        let r = order("100.00", 2).record;
        let mut stored = serde_json::to_value(&r).unwrap();
        // As an earlier version would have written it: no `subtotal` member.
        stored["body"].as_object_mut().unwrap().remove("subtotal");
        let back: Record = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(back, r);
        assert_eq!(hash_payload(&stored), r.content_hash());
        assert_ne!(serde_hash(&stored), serde_hash(&r));
    }

    #[test]
    fn the_version_time_is_not_content() {
        let r = order("100.00", 2).record;
        let mut later = r.clone();
        later.source_update_time = Some(t0());
        assert_eq!(r.content_hash(), later.content_hash());
        // A stored payload hashes as its record, with or without the time.
        let stored = serde_json::to_value(&later).unwrap();
        assert!(stored.get("source_update_time").is_some());
        assert_eq!(hash_record_payload(&stored), later.content_hash());
        // ...and a record without one stores no such member, so payloads
        // written before versions read back and hash as they did.
        let old = serde_json::to_value(&r).unwrap();
        assert!(old.get("source_update_time").is_none());
        assert_eq!(hash_payload(&old), r.content_hash());
        // Other content still differs.
        let mut edited = later.clone();
        edited.order_id = Some("other".into());
        assert_ne!(edited.content_hash(), later.content_hash());
    }

    #[test]
    fn amounts_compare_by_value_and_keys_by_name() {
        let a = json!({"b": {"amount": "100.0", "currency": "USD"}, "a": 1});
        let b = json!({"a": 1, "b": {"currency": "USD", "amount": "100.00"}, "c": null});
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_json(&a),
            r#"{"a":1,"b":{"amount":"100","currency":"USD"}}"#
        );
        let c = json!({"a": 1, "b": {"currency": "USD", "amount": "100.01"}});
        assert_ne!(hash_payload(&a), hash_payload(&c));
    }
}
