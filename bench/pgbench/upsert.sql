-- POST /v1/contacts {"phone", "first_name": "Bench", "tags": ["bench"], "custom_fields": {"k": "v"}}
-- as the app runs it (contacts/service.py upsert_v1), as far as a pgbench script can branch:
--   SELECT ... FOR UPDATE by (workspace_id, phone); when absent: stages, INSERT ... ON CONFLICT DO
--   NOTHING RETURNING, the contact_tags row, the counters; when present: UPDATE ... RETURNING, the
--   removed tags deleted, the new tag inserted, the counter deltas.
-- Differences from the app, all small: the phone is '+' || a number, the uuid comes from
-- gen_random_uuid(), the custom_fields merge and the tag/counter deltas are computed in SQL from
-- the locked row rather than in Python (same rows written), and an existing contact is updated even
-- when nothing changes (the ranges are chosen so that repeats are rare).
-- Variables: ws, key_hash, stage (the default stage), existing_lo/hi, new_lo/hi, existing_percent.
\set shard random(0, 7)
\if random(1, 100) <= :existing_percent
\set pnum 919800000000 + random(:existing_lo, :existing_hi)
\else
\set pnum 919900000000 + random(:new_lo, :new_hi)
\endif
\set c_id -1
\set n_id -1
BEGIN;
SELECT api_keys.id, api_keys.workspace_id, api_keys.key_hash, api_keys.scopes, api_keys.expires_at, api_keys.revoked_at, api_keys.last_used_at, api_keys.rate_limit_per_minute, api_keys.rate_limit_per_second, workspaces.rate_limit_per_minute AS ws_per_minute, workspaces.rate_limit_per_second AS ws_per_second FROM api_keys JOIN workspaces ON workspaces.id = api_keys.workspace_id WHERE api_keys.key_hash = :key_hash::VARCHAR;
SELECT contacts.id, contacts.uuid, contacts.phone, contacts.first_name, contacts.last_name, contacts.email, contacts.stage, contacts.tags, contacts.custom_fields, contacts.created_at, contacts.updated_at FROM contacts WHERE contacts.workspace_id = :ws::UUID AND contacts.phone = ('+' || :pnum)::VARCHAR FOR UPDATE \aset c_
\if :c_id < 0
SELECT stages.name FROM stages WHERE stages.workspace_id = :ws::UUID ORDER BY stages.position;
INSERT INTO contacts (uuid, workspace_id, phone, first_name, last_name, email, stage, tags, custom_fields, created_at, updated_at) VALUES (gen_random_uuid(), :ws::UUID, ('+' || :pnum)::VARCHAR, 'Bench', NULL, NULL, :stage::VARCHAR, '["bench"]'::JSONB, '{"k": "v"}'::JSONB, now(), now()) ON CONFLICT (workspace_id, phone) DO NOTHING RETURNING contacts.id, contacts.uuid, contacts.phone, contacts.first_name, contacts.last_name, contacts.email, contacts.stage, contacts.tags, contacts.custom_fields, contacts.created_at, contacts.updated_at \aset n_
\if :n_id >= 0
INSERT INTO contact_tags (contact_id, tag, workspace_id) VALUES (:n_id::BIGINT, 'bench', :ws::UUID);
INSERT INTO contact_counts (workspace_id, kind, key, shard, n) VALUES (:ws::UUID, 'all', '', :shard::SMALLINT, 1), (:ws::UUID, 'stage', :stage::VARCHAR, :shard::SMALLINT, 1), (:ws::UUID, 'tag', 'bench', :shard::SMALLINT, 1) ON CONFLICT (workspace_id, kind, key, shard) DO UPDATE SET n = (contact_counts.n + excluded.n);
\endif
\else
UPDATE contacts SET first_name = 'Bench'::VARCHAR, tags = '["bench"]'::JSONB, custom_fields = :c_custom_fields::JSONB || '{"k": "v"}'::JSONB, updated_at = now() WHERE contacts.id = :c_id::BIGINT RETURNING contacts.id, contacts.uuid, contacts.phone, contacts.first_name, contacts.last_name, contacts.email, contacts.stage, contacts.tags, contacts.custom_fields, contacts.created_at, contacts.updated_at;
DELETE FROM contact_tags WHERE contact_tags.contact_id = :c_id::BIGINT AND contact_tags.tag <> 'bench' AND contact_tags.tag IN (SELECT jsonb_array_elements_text(:c_tags::JSONB));
INSERT INTO contact_tags (contact_id, tag, workspace_id) VALUES (:c_id::BIGINT, 'bench', :ws::UUID) ON CONFLICT DO NOTHING;
INSERT INTO contact_counts (workspace_id, kind, key, shard, n) SELECT :ws::UUID, 'tag', d.key, :shard::SMALLINT, d.n FROM (SELECT t AS key, -1 AS n FROM jsonb_array_elements_text(:c_tags::JSONB) AS t WHERE t <> 'bench' UNION ALL SELECT 'bench', 1 WHERE NOT (:c_tags::JSONB ? 'bench')) AS d ORDER BY d.key ON CONFLICT (workspace_id, kind, key, shard) DO UPDATE SET n = (contact_counts.n + excluded.n);
\endif
COMMIT;
