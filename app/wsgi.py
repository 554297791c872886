"""WSGI entry point for gunicorn and Elastic Beanstalk (`app.wsgi:application`)."""

from app import create_app

application = create_app()
app = application
