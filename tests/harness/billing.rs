//! How DynamoDB sizes an item for billing (the benchmarks turn request bodies into units with
//! it): attribute names plus values, in DynamoDB JSON (`{"S": …}`, `{"N": …}`, …).

/// An item's size in bytes as DynamoDB counts it: attribute names plus values.
pub fn item_size(item: &serde_json::Value) -> usize {
    item.as_object().map(|m| m.iter().map(|(k, v)| k.len() + value_size(v)).sum()).unwrap_or(0)
}

/// One attribute value's size.
pub fn value_size(v: &serde_json::Value) -> usize {
    let Some((kind, inner)) = v.as_object().and_then(|m| m.iter().next()) else { return 0 };
    match kind.as_str() {
        "S" => inner.as_str().map_or(0, str::len),
        // Numbers: about one byte per two significant digits, plus one.
        "N" => inner.as_str().map_or(1, |n| n.trim_start_matches('-').replace('.', "").len().div_ceil(2) + 1),
        "B" => inner.as_str().map_or(0, |b| b.len() * 3 / 4),
        "BOOL" | "NULL" => 1,
        // Maps and lists: 3 bytes, plus one per element.
        "M" => 3 + inner.as_object().map_or(0, |m| m.iter().map(|(k, v)| 1 + k.len() + value_size(v)).sum()),
        "L" => 3 + inner.as_array().map_or(0, |l| l.iter().map(|x| 1 + value_size(x)).sum()),
        "SS" => inner.as_array().map_or(0, |l| l.iter().map(|x| x.as_str().map_or(0, str::len)).sum()),
        "NS" => inner.as_array().map_or(0, |l| l.iter().map(|x| x.as_str().map_or(1, |n| n.len() / 2 + 1)).sum()),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_follow_dynamodb_rules() {
        let item =
            json!({"pk": {"S": "abc"}, "n": {"N": "12345"}, "m": {"M": {"k": {"S": "vv"}}}, "b": {"BOOL": true}});
        // pk 2+3, n 1+(5→3+1), m 1+(3+1+1+2), b 1+1
        assert_eq!(item_size(&item), 5 + 5 + 8 + 2);
    }
}
