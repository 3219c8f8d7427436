import time, glob, sys
import torch
torch.set_num_threads(1)
from vision.core import PILImage, PILImageBW, ToTensor
from vision.resize import Resize, RandomResizedCrop
from blocks.transform import Pipeline
fs = sorted(glob.glob('/tmp/vbench/img_*.jpg'))
bigs = sorted(glob.glob('/tmp/vbench/big_*.jpg'))
def bench(name, f, files, reps=5):
    for p in files[:3]: f(p)
    best = 1e9
    for _ in range(reps):
        t = time.perf_counter()
        for p in files: f(p)
        best = min(best, (time.perf_counter() - t) / len(files))
    print(f'{name:55s} {best*1e3:6.3f} ms  {1/best:6.0f} img/s')
for split in (0, 1):
    item = Pipeline([Resize(460), ToTensor()], split_idx=split)
    bench(f'create+Resize(460)+ToTensor 500x375 split {split}', lambda p: item(PILImage.create(p)), fs)
item = Pipeline([Resize(460), ToTensor()], split_idx=0)
bench('  create only', lambda p: PILImage.create(p), fs)
bench('  create + load (decode)', lambda p: PILImage.create(p).load(), fs)
ims = [PILImage.create(p) for p in fs]; [i.load() for i in ims]
it = iter(range(10**9))
bench('  Resize(460) on decoded', lambda p: Resize(460)(ims[next(it) % len(ims)], split_idx=0), fs)
rs = [Resize(460)(i, split_idx=0) for i in ims]
bench('  ToTensor on 460x460', lambda p: ToTensor()(rs[next(it) % len(rs)]), fs)
rrc = Pipeline([RandomResizedCrop(224), ToTensor()], split_idx=0)
bench('create+RandomResizedCrop(224)+ToTensor 500x375', lambda p: rrc(PILImage.create(p)), fs)
bench('create+Resize(460)+ToTensor 3000x2250 (draft)', lambda p: item(PILImage.create(p)), bigs, 2)
def full(p):
    im = PILImage.create(p); im.load(); return item(im)
bench('create+load+Resize(460)+ToTensor 3000x2250 (no draft)', full, bigs, 2)
