-- Verified security profiles (SPEC 1, 2.1, 2.6): a profile a developer made in the self-service console is
-- unverified until the operator runs `latchkey client verify`; profiles the operator made with the CLI are
-- verified. A new row is unverified unless its insert says otherwise (the safe default).
ALTER TABLE clients ADD COLUMN verified BIGINT NOT NULL DEFAULT 0;
-- Existing rows: the console stores a developer's own account id as the owner; the CLI stores `--owner`
-- (default "operator"), a name the operator chose. Every app whose owner is an account or a developer stays
-- unverified; the rest were made by the operator.
UPDATE clients SET verified = 1
 WHERE owner NOT IN (SELECT id FROM users)
   AND owner NOT IN (SELECT user_id FROM developers);
