import sys

from ssl_course.cli import main

sys.exit(main())
