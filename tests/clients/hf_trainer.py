"""A tiny Hugging Face Trainer with report_to="wandb", unchanged: a 2-layer BERT from a config, random ids, CPU."""

import sys
import tempfile

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments


class RandomIds(torch.utils.data.Dataset):
    def __init__(self, size: int = 64) -> None:
        generator = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, 100, (size, 16), generator=generator)
        self.labels = torch.randint(0, 2, (size,), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        return {"input_ids": self.ids[index], "labels": self.labels[index]}


def main() -> None:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=32, num_labels=2)
    model = BertForSequenceClassification(config)
    with tempfile.TemporaryDirectory() as output:
        args = TrainingArguments(output_dir=output, max_steps=8, logging_steps=2, per_device_train_batch_size=4,
                                 learning_rate=1e-3, report_to="wandb", run_name="tiny-bert", save_strategy="no",
                                 use_cpu=True, dataloader_num_workers=int(sys.argv[1]) if len(sys.argv) > 1 else 0,
                                 disable_tqdm=True)
        Trainer(model=model, args=args, train_dataset=RandomIds()).train()


if __name__ == "__main__":
    main()
