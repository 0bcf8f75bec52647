//! Why an outbound message failed, in words an advisor or a brand's inbox can show: Meta's Graph
//! error codes (WhatsApp's table in shared/reference/meta-channels.md) turned into one plain
//! sentence each. Pure: a code in, a sentence out.

/// A plain-language reason for a failed message. `None`: the channel refused the message without
/// a Graph error code (a bare HTTP error, or a request Parley could not build).
pub fn failure_reason(code: Option<i64>) -> &'static str {
    let Some(code) = code else {
        return "The channel refused the message without giving a reason.";
    };
    match code {
        131026 => {
            "The message could not be delivered: the number may not use WhatsApp, or the person has not \
             accepted WhatsApp's terms or uses an outdated app."
        }
        131047 | 2534022 | 2018278 => {
            "More than 24 hours have passed since the customer last wrote: only an approved template can \
             be sent now."
        }
        131049 => {
            "Meta held the message back to limit the marketing messages this person gets; do not resend \
             it within 24 hours."
        }
        131050 => "The customer has stopped marketing messages from this business.",
        131021 => "The sender and the recipient are the same number.",
        130472 => "Meta held the message back as part of a marketing experiment.",
        130403 => "The business has blocked this customer.",
        131051 => "This kind of message is not supported by the channel.",
        131052 => "The customer's media could not be downloaded.",
        131053 => "The media of the message could not be uploaded.",
        131048 => "The business number is restricted for sending (spam or quality); sending is paused.",
        131064 => "The messaging limit is reached after template categorisation problems.",
        130497 => "The business may not message customers in this country.",
        131042 => "There is a problem with the business's payment method at Meta.",
        131045 => "The business phone number is not registered correctly.",
        131031 | 368 => "The business account is locked or restricted by Meta.",
        0 | 190 => "The access token is expired or invalid; sending is paused until it is replaced.",
        4 | 80007 | 130429 | 131056 => "Too many messages in a short time; the message is retried later.",
        1 | 2 | 131000 | 131016 | 131057 | 2494100 | 1200 => "A temporary problem at Meta; the message is retried.",
        3 | 10 | 131005 | 200..=299 => "The app lacks the permission to send this message.",
        100 | 131008 | 131009 => "Meta rejected the message as invalid (a missing or wrong parameter).",
        132000..=132999 => "The template is missing, not approved, paused, or its parameters do not fit.",
        _ => "Meta rejected the message.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_get_their_own_sentence_and_unknown_ones_a_general_one() {
        assert!(failure_reason(Some(131026)).contains("could not be delivered"));
        assert!(failure_reason(Some(131047)).contains("24 hours"));
        assert!(failure_reason(Some(132001)).contains("template"));
        assert_eq!(failure_reason(Some(999_999)), "Meta rejected the message.");
        assert!(failure_reason(None).contains("without giving a reason"));
        // One plain sentence each: no Graph jargon, no doubled spaces from the line breaks.
        for code in [0, 4, 100, 131000, 131026, 131047, 131049, 131050, 132000] {
            let r = failure_reason(Some(code));
            assert!(r.ends_with('.') && !r.contains("  ") && !r.contains('#'), "{r}");
        }
    }
}
