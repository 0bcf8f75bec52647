//! The benchmarks' one bill: AWS list prices, and how DynamoDB sizes an item for billing
//! (request bodies become units with it): attribute names plus values, in DynamoDB JSON
//! (`{"S": …}`, `{"N": …}`, …).

/// List prices, region us-east-1, as of 2026-12-02 (each service's pricing page; eu-central-1
/// is about 20 % higher for DynamoDB).
pub mod prices {
    /// DynamoDB on-demand: per write request unit and per read request unit
    /// (aws.amazon.com/dynamodb/pricing/on-demand, after the November 2024 cut).
    pub const DYNAMODB_WRU: f64 = 0.625e-6;
    pub const DYNAMODB_RRU: f64 = 0.125e-6;
    /// SQS per request (64 KB chunk), past the first million a month: standard and FIFO queues
    /// (aws.amazon.com/sqs/pricing).
    pub const SQS_STANDARD: f64 = 0.40e-6;
    pub const SQS_FIFO: f64 = 0.50e-6;
    /// API Gateway HTTP API, first 300 million a month (each 512 KB one request).
    pub const HTTP_API_REQUEST: f64 = 1.00e-6;
    /// Lambda, arm64: per request and per GB-second.
    pub const LAMBDA_REQUEST: f64 = 0.20e-6;
    pub const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
    /// CloudWatch Logs ingestion (standard log class), per GB; storage ($0.03/GB-month) is on
    /// top for as long as `LogRetentionInDays` keeps them.
    pub const LOGS_PER_GB: f64 = 0.50;
}

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
