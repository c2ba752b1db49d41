"""The operator's tools: where is document X (`trace`), the status console, the version.

They only read what the daemon already records (audit topic, ledger, event topics, dead
letters); nothing here changes a document's course.
"""
