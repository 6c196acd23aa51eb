import sys

from ssl_course.cli import main

if __name__ == "__main__":  # importing this module (e.g. to document it) must not run the command line
    sys.exit(main())
