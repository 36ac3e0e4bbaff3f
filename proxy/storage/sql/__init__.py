"""Metadata in a real database (issue 14): one SQLAlchemy Core model for SQLite and PostgreSQL,
its Alembic migrations, and the SQL stores of private projects and of users and tokens."""
