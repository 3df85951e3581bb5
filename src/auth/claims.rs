//! User claims as providers write them: the same reading for ID tokens, userinfo
//! answers and Bearer access tokens.

use serde_json::{Map, Value};

/// The groups in `claim`: a JSON array (Cognito, most providers) or one string of
/// names separated by commas or spaces (some providers and proxies); `None` when the
/// claim is absent or of another type.
pub fn groups(claims: &Map<String, Value>, claim: &str) -> Option<Vec<String>> {
    match claims.get(claim)? {
        Value::Array(items) => Some(items.iter().filter_map(Value::as_str).map(str::to_owned).collect()),
        Value::String(list) => Some(list.split([',', ' ']).filter(|g| !g.is_empty()).map(str::to_owned).collect()),
        _ => None,
    }
}

/// `email_verified`: a boolean (Cognito ID tokens, most providers) or the string
/// `"true"`/`"false"` (Cognito's userinfo, some others).
pub fn email_verified(claims: &Map<String, Value>) -> Option<bool> {
    match claims.get("email_verified")? {
        Value::Bool(verified) => Some(*verified),
        Value::String(verified) => Some(verified.eq_ignore_ascii_case("true")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn arrays_and_strings_alike() {
        let claims = |value: Value| json!({ "g": value, "email_verified": value }).as_object().unwrap().clone();
        assert_eq!(groups(&claims(json!(["a", "b"])), "g"), Some(vec!["a".into(), "b".into()]));
        assert_eq!(groups(&claims(json!("a, b c")), "g"), Some(vec!["a".into(), "b".into(), "c".into()]));
        assert_eq!(groups(&claims(json!(1)), "g"), None);
        assert_eq!(groups(&claims(json!([])), "other"), None);
        assert_eq!(email_verified(&claims(json!(false))), Some(false));
        assert_eq!(email_verified(&claims(json!("false"))), Some(false));
        assert_eq!(email_verified(&claims(json!("TRUE"))), Some(true));
        assert_eq!(email_verified(&claims(json!(null))), None);
    }
}
