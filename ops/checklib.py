"""Helpers the ops/ check scripts share (loopback only)."""
import time

def wait(cond, seconds, step=0.3):
    """Polls cond() until it is true or `seconds` pass; an OSError, ValueError or KeyError from
    cond (a node not answering yet) counts as false."""
    end = time.time() + seconds
    while time.time() < end:
        try:
            if cond(): return True
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(step)
    return False
