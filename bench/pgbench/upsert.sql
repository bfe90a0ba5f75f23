-- POST /v1/contacts {"phone", "first_name": "Bench", "tags": ["bench"], "custom_fields": {"k": "v"}}
-- as the app runs it on PostgreSQL (contacts/service.py upsert_v1, optimistic path), as far as a
-- pgbench script can branch. Every statement in autocommit: the API key lookup; the contact by
-- phone with its row version (xmin); then either the insert (contact, contact_tags row and counters
-- in one statement, the default stage read by the insert) or the update checked against that
-- version (contact, tag changes and counter deltas in one statement).
-- Differences from the app, all small: the phone is '+' || a number, the uuid comes from
-- gen_random_uuid(), the custom_fields merge and the tag/counter deltas are computed in SQL from
-- the row read rather than in Python (same rows written), an existing contact is updated even when
-- nothing changes (the ranges make repeats rare), and the app's fallback when another writer got in
-- between (BEGIN, SELECT ... FOR UPDATE, update, COMMIT) is not replayed (no two clients share a
-- phone here).
-- Variables: ws, key_hash, stage (unused: the insert reads it), existing_lo/hi, new_lo/hi,
-- existing_percent.
\set shard random(0, 7)
\if random(1, 100) <= :existing_percent
\set pnum 919800000000 + random(:existing_lo, :existing_hi)
\else
\set pnum 919900000000 + random(:new_lo, :new_hi)
\endif
\set c_id -1
SELECT k.id, k.workspace_id, k.key_hash, k.scopes, k.expires_at, k.revoked_at, k.last_used_at, k.rate_limit_per_minute, k.rate_limit_per_second, w.rate_limit_per_minute AS ws_per_minute, w.rate_limit_per_second AS ws_per_second FROM api_keys k JOIN workspaces w ON w.id = k.workspace_id WHERE k.key_hash = :key_hash::VARCHAR;
SELECT id, number, uuid, phone, first_name, last_name, email, stage, tags, custom_fields, created_at, updated_at, xmin AS version FROM contacts WHERE workspace_id = :ws::UUID AND phone = ('+' || :pnum)::VARCHAR \aset c_
\if :c_id < 0
WITH ins AS ( INSERT INTO contacts (uuid, workspace_id, phone, first_name, last_name, email, stage, tags, custom_fields, created_at, updated_at, number) VALUES (gen_random_uuid(), :ws::UUID, ('+' || :pnum)::VARCHAR, 'Bench', NULL, NULL, coalesce(NULL::varchar, (SELECT s.name FROM stages s WHERE s.workspace_id = :ws::UUID ORDER BY s.position LIMIT 1), 'Lead'::varchar), '["bench"]'::JSONB, '{"k": "v"}'::JSONB, now(), now(), contact_number_next(:ws::UUID)) ON CONFLICT (workspace_id, phone) DO NOTHING RETURNING id, number, uuid, phone, first_name, last_name, email, stage, tags, custom_fields, created_at, updated_at), tagged AS ( INSERT INTO contact_tags (contact_id, tag, workspace_id) SELECT ins.id, t.tag, :ws::UUID FROM ins CROSS JOIN unnest(ARRAY['bench']::varchar[]) AS t(tag)), counted AS ( INSERT INTO contact_counts (workspace_id, kind, key, shard, n) SELECT :ws::UUID, d.kind, d.key, :shard::SMALLINT, 1 FROM ins CROSS JOIN LATERAL ( SELECT 'all'::varchar AS kind, ''::varchar AS key UNION ALL SELECT 'stage', ins.stage UNION ALL SELECT 'tag', t.tag FROM unnest(ARRAY['bench']::varchar[]) AS t(tag) ) AS d ORDER BY d.kind COLLATE "C", d.key COLLATE "C" ON CONFLICT (workspace_id, kind, key, shard) DO UPDATE SET n = contact_counts.n + excluded.n) SELECT id, number, uuid, phone, first_name, last_name, email, stage, tags, custom_fields, created_at, updated_at FROM ins;
\else
WITH upd AS (UPDATE contacts SET first_name = 'Bench', tags = '["bench"]'::JSONB, custom_fields = :c_custom_fields::JSONB || '{"k": "v"}'::JSONB, updated_at = now() WHERE id = :c_id::BIGINT AND xmin = :c_version::xid RETURNING id, number, uuid, phone, first_name, last_name, email, stage, tags, custom_fields, created_at, updated_at), untagged AS ( DELETE FROM contact_tags WHERE contact_id = :c_id::BIGINT AND tag IN (SELECT t FROM jsonb_array_elements_text(:c_tags::JSONB) AS t WHERE t <> 'bench') AND EXISTS (SELECT FROM upd)), tagged AS ( INSERT INTO contact_tags (contact_id, tag, workspace_id) SELECT :c_id::BIGINT, 'bench', :ws::UUID FROM upd WHERE NOT (:c_tags::JSONB ? 'bench')), counted AS ( INSERT INTO contact_counts (workspace_id, kind, key, shard, n) SELECT :ws::UUID, 'tag', d.key, :shard::SMALLINT, d.n FROM upd CROSS JOIN (SELECT t AS key, -1 AS n FROM jsonb_array_elements_text(:c_tags::JSONB) AS t WHERE t <> 'bench' UNION ALL SELECT 'bench', 1 WHERE NOT (:c_tags::JSONB ? 'bench')) AS d ORDER BY d.key COLLATE "C" ON CONFLICT (workspace_id, kind, key, shard) DO UPDATE SET n = contact_counts.n + excluded.n) SELECT id, number, uuid, phone, first_name, last_name, email, stage, tags, custom_fields, created_at, updated_at FROM upd;
\endif
