"""Jobs: durable records of long work, its progress, its events, and what runs it.

``store`` keeps job records in the catalog; ``progress`` feeds them from the one progress
interface; ``events`` tells live subscribers; ``runner`` runs one job by id through the
handler registered for its kind; ``executor`` decides where that happens (threads here,
a Celery worker later, with nothing above it changing).
"""
