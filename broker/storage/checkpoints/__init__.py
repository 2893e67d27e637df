"""LangGraph's checkpointer: one base (`base`), a Postgres and a SQLite backend."""
