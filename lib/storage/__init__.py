"""The run log's database: the store and its migrations, the History queries, recordings."""
