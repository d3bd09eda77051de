"""The embedded store: one SQLite database (WAL mode) under the root folder, and all of its SQL
(the worker writes, a reader reads).

Layout of a root::

    <root>/mplogger.db          runs, history blocks, output, system metrics, alerts, schema version
    <root>/runs/<run_id>/       a folder per run, for its files
    <root>/artifacts/           artifact files, stored once by content (see :mod:`._objects`)

Everything in the database is text, numbers or JSON (see :mod:`mplogger._shared._values`): it can be
read with the ``sqlite3`` shell and JSON tools, and nothing in it is ever unpickled. The modules:
:mod:`._paths` (ids and folders, no SQL), :mod:`._schema` (opening, creating, upgrading),
:mod:`._records` (runs, output, system metrics, alerts, maintenance), :mod:`._history` (the
history in blocks: the worker's writer and the readers), :mod:`._artifacts` (artifact versions,
aliases and lineage) and :mod:`._objects` (artifact files on disk, no SQL).
"""

from mplogger._store._artifacts import (ARTIFACT_COLUMNS, FileRow, add_version, artifact_files, artifact_runs,
                                        artifact_tables_ready, delete_run_artifacts, find_versions, logged_version, refuse_log, held_digests,
                                        manifest_digest, record_use, referenced_digests, run_artifacts,
                                        select_versions, stored_files, version_record)
from mplogger._store._objects import (artifacts_dir, claim_staging, claimed, clone_file, hash_file, in_store, is_digest, new_staging,
                                      object_path, objects, put_object, remove_object, staging_dirs, staging_owner)
from mplogger._store._history import (BLOCK_ROWS, TAIL_AGE_S, BlockColumns, BlockInfo, HistoryWriter, Lost,
                                      block_columns, block_keys, block_rows, blocks, column_summaries, decode_column, delete_history, encode_column, keys_of,
                                      last_row, last_seq, last_step, legacy_rows, next_block, object_keys, read_keys,
                                      read_table, scan_rows, stored_rows)
from mplogger._store._paths import (DB_NAME, RUN_ID_MAX, RUN_ID_RULE, UNSEEDED, check_run_id, db_path,
                                    file_identity, has_database, is_run_id, new_run_id, no_database, run_dir)
from mplogger._store._records import (RUN_COLUMNS, RUN_TABLES, delete_orphans, delete_run_rows, fetch_run,
                                      insert_alert, insert_output, insert_run, insert_system_sample, integrity,
                                      mark_crashed, mark_run_crashed, merge_environment, orphan_count, output_rows,
                                      row_counts, run_ids, running_runs, runs_table_ready, select_runs,
                                      set_row_count, system_rows, update_run)
from mplogger._store._schema import (BUSY_TIMEOUT_S, SCHEMA_VERSION, begin, commit, connect, connect_reader, retry_locked,
                                     rollback, schema_version)

__all__ = [
    "ARTIFACT_COLUMNS", "FileRow", "add_version", "artifact_files", "artifact_runs", "artifact_tables_ready",
    "delete_run_artifacts", "find_versions", "logged_version", "refuse_log", "held_digests", "manifest_digest", "record_use", "referenced_digests",
    "run_artifacts", "select_versions", "stored_files", "version_record", "artifacts_dir", "claim_staging", "claimed", "clone_file", "hash_file",
    "in_store", "is_digest", "new_staging", "object_path", "objects", "put_object", "remove_object", "staging_dirs", "staging_owner",
    "BLOCK_ROWS", "BUSY_TIMEOUT_S", "DB_NAME", "RUN_COLUMNS", "RUN_ID_MAX", "RUN_ID_RULE", "RUN_TABLES",
    "SCHEMA_VERSION", "TAIL_AGE_S", "begin", "commit", "rollback", "UNSEEDED", "BlockColumns", "BlockInfo", "HistoryWriter", "Lost", "block_columns", "block_keys", "block_rows", "blocks", "check_run_id",
    "column_summaries", "connect", "connect_reader", "db_path", "decode_column", "delete_history",
    "delete_orphans", "delete_run_rows", "encode_column", "fetch_run", "file_identity", "has_database",
    "insert_alert", "insert_output", "insert_run", "insert_system_sample", "integrity", "is_run_id", "keys_of",
    "last_row", "last_seq", "last_step", "legacy_rows", "mark_crashed", "mark_run_crashed", "merge_environment", "new_run_id",
    "next_block", "no_database", "object_keys", "orphan_count", "output_rows", "read_keys", "read_table", "retry_locked",
    "row_counts", "run_dir", "run_ids", "running_runs", "runs_table_ready", "scan_rows", "schema_version",
    "select_runs", "set_row_count", "stored_rows", "system_rows", "update_run",
]
