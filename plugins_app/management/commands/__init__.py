"""`manage.py plugins ...`: list and operate plugins from a shell."""
