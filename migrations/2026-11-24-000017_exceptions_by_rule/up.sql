-- Settling exceptions by the rules (deposits::RESOLVE_RULES: a payout
-- applied settles its fee and waiting exceptions, a record that arrived
-- settles the exceptions waiting for it) found them by rule and subject
-- through an index bound by the merchant alone: a read of every open
-- exception of the merchant per settlement. One probe per (rule, subject)
-- instead, over the open ones only.
CREATE INDEX exceptions_open_by_rule ON exceptions (merchant_id, rule, subject)
    WHERE state <> 'resolved';
