"""PostgreSQL: the models, the repositories, the unit of work, the schema check."""
