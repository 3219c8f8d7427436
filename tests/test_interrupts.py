"""Ctrl-C as a terminal sends it: SIGINT to the whole process group, the loader's workers included."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT / 'data' / 'photos' / 'images'

# A worker (persistent, the default), as a GPU or a CPU of more than 2 cores gets by default, and the default
# progress bar. The callback writes a marker on the fourth batch of the first fit and then keeps training slowly, so
# the SIGINT lands mid-epoch, with batches in flight.
_FIT_CTRL_C_FIT = textwrap.dedent('''
    import sys, time
    from pathlib import Path
    from blocklearn.vision.all import *
    marker = Path(sys.argv[2])
    class Slow(Callback):
        def after_batch(self):
            if self.learn.iter == 3 and not marker.exists():
                marker.write_text('ready')
            if marker.exists():
                time.sleep(0.05)
    dls = ImageDataLoaders.from_name_re(sys.argv[1], get_image_files(sys.argv[1]), r'(.+)_\\d+.jpg$',
                                        item_tfms=Resize(32), bs=8, seed=0, device='cpu', num_workers=1)
    assert dls.train.num_workers > 0 and dls.train.persistent_workers
    learn = vision_learner(dls, resnet18, pretrained=False, metrics=error_rate)
    try:
        learn.fit(3, 1e-3, cbs=Slow())
    except KeyboardInterrupt:
        print('interrupted', flush=True)
    else:
        sys.exit('the fit ran to its end: the SIGINT never reached it')
    marker.unlink()
    learn.fit(1, 1e-3)
    print('fit again:', learn.recorder.values[-1][0] > 0, flush=True)
''')


def test_ctrl_c_to_the_process_group_then_fit_again(tmp_path):
    marker = tmp_path / 'ready'
    proc = subprocess.Popen([sys.executable, '-c', _FIT_CTRL_C_FIT, str(PHOTOS), str(marker)], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        end = time.monotonic() + 240
        while not marker.exists() and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.02)
        assert marker.exists(), f'the fit never reached its fourth batch:\n{proc.communicate()[1][-3000:]}'
        os.killpg(proc.pid, signal.SIGINT)          # a terminal's Ctrl-C: the main process and every worker
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err[-3000:]
    assert 'fit again: True' in out
    # the interrupted bar ended its line: the message starts one of its own
    assert '\ninterrupted\n' in out, out[-2000:]
