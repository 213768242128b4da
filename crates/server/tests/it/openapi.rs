//! Checks response bodies against the Swagger 2.0 definitions in `tests/openapi`: `$ref` (within
//! a file and across the files kept there), `allOf`, `type`, `properties`, `required`, `items`,
//! `additionalProperties` and closed `enum`s (`x-ms-enum` with `modelAsString: true` is open).
//! A `$ref` into a file that is not kept (e.g. `applicationGateway.json`) accepts anything.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

fn specs() -> &'static HashMap<String, Value> {
    static SPECS: OnceLock<HashMap<String, Value>> = OnceLock::new();
    SPECS.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi");
        std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "json"))
            .map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let text = std::fs::read_to_string(entry.path()).unwrap();
                (name, serde_json::from_str(&text).unwrap())
            })
            .collect()
    })
}

/// Panics with every mismatch between `body` and definition `definition` of `file`.
pub fn assert_valid(file: &str, definition: &str, body: &Value) {
    let schema = serde_json::json!({ "$ref": format!("#/definitions/{definition}") });
    let mut errors = Vec::new();
    check(file, &schema, body, "$", &mut errors);
    assert!(errors.is_empty(), "{file}#{definition}: {errors:#?}\nin {body:#}");
}

fn resolve<'a>(file: &str, reference: &str) -> Option<(String, &'a Value)> {
    let (target, pointer) = reference.split_once('#')?;
    let target = if target.is_empty() {
        file.to_owned()
    } else {
        target.trim_start_matches("./").to_owned()
    };
    let schema = specs().get(&target)?.pointer(pointer)?;
    Some((target, schema))
}

fn check(file: &str, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        if let Some((target, resolved)) = resolve(file, reference) {
            check(&target, resolved, value, at, errors);
        }
        return;
    }
    for part in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        check(file, part, value, at, errors);
    }
    if value.is_null() {
        return; // Absent and null read alike for the clients; ARM sends nulls the specs omit.
    }
    let type_ok = match schema.get("type").and_then(Value::as_str) {
        None => true,
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some(_) => true,
    };
    if !type_ok {
        errors.push(format!("{at}: {value} is not of type {}", schema["type"]));
        return;
    }
    if let (Some(allowed), Some(text)) =
        (schema.get("enum").and_then(Value::as_array), value.as_str())
    {
        let open =
            schema.pointer("/x-ms-enum/modelAsString").and_then(Value::as_bool).unwrap_or(false);
        if !open
            && !allowed
                .iter()
                .any(|option| option.as_str().is_some_and(|o| o.eq_ignore_ascii_case(text)))
        {
            errors.push(format!("{at}: {text:?} is not one of {allowed:?}"));
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            let name = required.as_str().unwrap_or_default();
            if !object.contains_key(name) {
                errors.push(format!("{at}: required '{name}' is missing"));
            }
        }
        for (name, member) in object {
            match properties.and_then(|properties| properties.get(name)) {
                Some(property) => check(file, property, member, &format!("{at}.{name}"), errors),
                None => {
                    if let Some(extra) =
                        schema.get("additionalProperties").filter(|extra| extra.is_object())
                    {
                        check(file, extra, member, &format!("{at}.{name}"), errors);
                    }
                }
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (index, item) in array.iter().enumerate() {
            check(file, items, item, &format!("{at}[{index}]"), errors);
        }
    }
}

#[test]
fn the_checker_finds_what_is_wrong() {
    let mut errors = Vec::new();
    let schema = serde_json::json!({"$ref": "#/definitions/PoolUsage"});
    check(
        "ipAddressManager.json",
        &schema,
        &serde_json::json!({"totalNumberOfIPAddresses": 5}),
        "$",
        &mut errors,
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    let mut errors = Vec::new();
    let schema = serde_json::json!({"$ref": "#/definitions/IpamPool"});
    check(
        "ipAddressManager.json",
        &schema,
        &serde_json::json!({"location": "x", "properties": {}}),
        "$",
        &mut errors,
    );
    assert!(errors.iter().any(|e| e.contains("addressPrefixes")), "{errors:?}");
}
