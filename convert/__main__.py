"""``python -m convert``: see convert/export_tflite.py."""
import sys

from convert.export_tflite import main

sys.exit(main())
