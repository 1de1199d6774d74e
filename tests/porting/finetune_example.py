"""A script in the style of PyTorch's transfer-learning tutorial and the idioms common around it:
torchvision's ResNet-18 with its classifier replaced for the dataset's classes, per-phase
transforms in a dict, a seeded random_split into train and val, set_grad_enabled per phase,
torch.sum(preds == labels.data) accuracy with .double(), the best weights kept with
copy.deepcopy, StepLR, and gradient clipping. Written for torch; the porting test runs it as it is
and with its import lines rewritten to pyconvnet's.
"""

import argparse
import copy
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.optim import lr_scheduler
from torch.utils.data import DataLoader, random_split
from torchvision import datasets, models, transforms

parser = argparse.ArgumentParser()
parser.add_argument('--data', required=True)
parser.add_argument('--epochs', type=int, default=25)
parser.add_argument('--batch-size', type=int, default=16)
parser.add_argument('--init-weights', default=None)
parser.add_argument('--no-augment', action='store_true')
parser.add_argument('--image-size', type=int, default=64)
parser.add_argument('--split-seed', type=int, default=42, help='-1: the first 75%% train, the rest val')
args = parser.parse_args()

torch.manual_seed(0)
torch.backends.cudnn.deterministic = True
torch.set_num_threads(1)

mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
data_transforms = {
    'train': transforms.Compose(([] if args.no_augment else [
        transforms.RandomResizedCrop(args.image_size, scale=(0.7, 1.0)),
        transforms.RandomHorizontalFlip(),
    ]) + [
        transforms.Resize(args.image_size),
        transforms.ToTensor(),
        transforms.Normalize(mean, std)
    ]),
    'val': transforms.Compose([
        transforms.Resize(args.image_size + args.image_size // 8),
        transforms.CenterCrop(args.image_size),
        transforms.ToTensor(),
        transforms.Normalize(mean, std)
    ]),
}

full = datasets.ImageFolder(os.path.join(args.data, 'train'))
if args.split_seed >= 0:
    train_indices, val_indices = random_split(range(len(full)), [0.75, 0.25],
                                              generator=torch.Generator().manual_seed(args.split_seed))
else:
    cut = int(0.75 * len(full))
    train_indices, val_indices = range(cut), range(cut, len(full))
image_datasets = {
    'train': torch.utils.data.Subset(
        datasets.ImageFolder(os.path.join(args.data, 'train'), data_transforms['train']), list(train_indices)),
    'val': torch.utils.data.Subset(
        datasets.ImageFolder(os.path.join(args.data, 'train'), data_transforms['val']), list(val_indices)),
}
dataloaders = {x: DataLoader(image_datasets[x], batch_size=args.batch_size,
                             shuffle=False, num_workers=0)
               for x in ['train', 'val']}
dataset_sizes = {x: len(image_datasets[x]) for x in ['train', 'val']}
class_names = full.classes
device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
print('classes', class_names, 'sizes', dataset_sizes)

model_ft = models.resnet18(weights=None)
num_ftrs = model_ft.fc.in_features
model_ft.fc = nn.Linear(num_ftrs, len(class_names))
if args.init_weights and os.path.exists(args.init_weights):
    weights = np.load(args.init_weights)
    model_ft.load_state_dict({name: torch.from_numpy(weights[name]) for name in weights.files})
elif args.init_weights:
    np.savez(args.init_weights, **{k: v.detach().cpu().numpy() for k, v in model_ft.state_dict().items()})
model_ft = model_ft.to(device)
print('parameters', sum(p.numel() for p in model_ft.parameters() if p.requires_grad))

criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
optimizer_ft = optim.SGD(model_ft.parameters(), lr=0.001, momentum=0.9)
exp_lr_scheduler = lr_scheduler.StepLR(optimizer_ft, step_size=1, gamma=0.5)


def train_model(model, criterion, optimizer, scheduler, num_epochs):
    since = time.time()
    best_model_wts = copy.deepcopy(model.state_dict())
    best_acc = 0.0

    for epoch in range(num_epochs):
        print(f'Epoch {epoch}/{num_epochs - 1} lr {scheduler.get_last_lr()[0]:.6f}')

        for phase in ['train', 'val']:
            if phase == 'train':
                model.train()
            else:
                model.eval()

            running_loss = 0.0
            running_corrects = 0

            for inputs, labels in dataloaders[phase]:
                inputs = inputs.to(device)
                labels = labels.to(device)

                optimizer.zero_grad()

                with torch.set_grad_enabled(phase == 'train'):
                    outputs = model(inputs)
                    _, preds = torch.max(outputs, 1)
                    loss = criterion(outputs, labels)

                    if phase == 'train':
                        loss.backward()
                        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=5.0)
                        optimizer.step()
                        print(f'step loss {loss.item():.6f} grad norm {norm.item():.6f}')

                running_loss += loss.item() * inputs.size(0)
                running_corrects += torch.sum(preds == labels.data)
            if phase == 'train':
                scheduler.step()

            epoch_loss = running_loss / dataset_sizes[phase]
            epoch_acc = running_corrects.double() / dataset_sizes[phase]

            print(f'{phase} Loss: {epoch_loss:.6f} Acc: {epoch_acc:.4f}')

            if phase == 'val' and epoch_acc > best_acc:
                best_acc = epoch_acc
                best_model_wts = copy.deepcopy(model.state_dict())

    time_elapsed = time.time() - since
    print(f'Training complete in {time_elapsed // 60:.0f}m {time_elapsed % 60:.0f}s')
    print(f'Best val Acc: {best_acc:4f}')

    model.load_state_dict(best_model_wts)
    return model


model_ft = train_model(model_ft, criterion, optimizer_ft, exp_lr_scheduler, num_epochs=args.epochs)
model_ft.eval()
with torch.no_grad():
    inputs, labels = next(iter(dataloaders['val']))
    probabilities = torch.softmax(model_ft(inputs), dim=1)
    top_p, top_class = probabilities.topk(1, dim=1)
    print('first prediction', class_names[top_class[0].item()], f'{top_p[0].item():.4f}')
