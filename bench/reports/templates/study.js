// The study page: draws the rater's pairs and checks, shows them with sides drawn at random,
// and saves the answers as a JSON file the rater downloads. Nothing is sent anywhere.
(function () {
  const study = JSON.parse(document.getElementById("study-data").textContent);
  const $ = (id) => document.getElementById(id);
  const questions = Object.keys(study.questions);

  function hash(text) {  // FNV-1a, 32 bits
    let h = 0x811c9dc5;
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    return h;
  }
  function generator(seed) {  // mulberry32
    let a = seed >>> 0;
    return function () {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  function itemsFor(rater) {
    // per_rater consecutive pairs of the pool from where the rater id hashes to, and the
    // checks likewise, each check put at a random place.
    const random = generator(hash(study.study_id + "/" + rater));
    const start = hash(rater) % study.pairs.length;
    const items = [];
    for (let i = 0; i < study.per_rater; i++) items.push(study.pairs[(start + i) % study.pairs.length]);
    const checkStart = study.checks.length ? hash("checks/" + rater) % study.checks.length : 0;
    for (let i = 0; i < study.checks_per_rater; i++) {
      const check = study.checks[(checkStart + i) % study.checks.length];
      items.splice(Math.floor(random() * (items.length + 1)), 0, check);
    }
    return items.map((item) => ({ item, left: random() < 0.5 ? "a" : "b" }));
  }

  let rater = "", shown = [], position = 0;
  const answers = [];

  function show() {
    const { item, left } = shown[position];
    $("progress").textContent = `${position + 1} / ${shown.length}`;
    const photos = study.subjects[item.subject].photos;
    $("photos").replaceChildren(...photos.map((src) => {
      const img = document.createElement("img");
      img.src = src;
      img.alt = "photo of the subject";
      return img;
    }));
    $("prompt").textContent = item.prompt;
    $("left").src = left === "a" ? item.image_a : item.image_b;
    $("right").src = left === "a" ? item.image_b : item.image_a;
    $("left").dataset.item = item.id;
    for (const input of document.querySelectorAll("#item input[type=radio]")) input.checked = false;
    $("next").disabled = true;
  }
  function chosen(question) {
    const input = document.querySelector(`#item input[name="${question}"]:checked`);
    return input ? input.value : null;
  }
  function save() {
    const blob = new Blob(
      [JSON.stringify({ format: 1, study_id: study.study_id, rater, answers }, null, 1)],
      { type: "application/json" },
    );
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = $("filename").textContent;
    document.body.append(link);
    link.click();
    link.remove();
  }

  $("begin").addEventListener("click", () => {
    rater = $("rater").value.trim();
    if (!/^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$/.test(rater)) {
      $("rater").setCustomValidity("letters, digits, _ . - (at most 64)");
      $("rater").reportValidity();
      return;
    }
    shown = itemsFor(rater);
    $("start").hidden = true;
    $("item").hidden = false;
    show();
  });
  document.addEventListener("change", () => {
    $("next").disabled = !questions.every((q) => chosen(q) !== null);
  });
  $("next").addEventListener("click", () => {
    const { item, left } = shown[position];
    const answer = { item: item.id, left };
    for (const q of questions) answer[q] = chosen(q);
    answers.push(answer);
    position += 1;
    if (position < shown.length) {
      show();
      return;
    }
    $("item").hidden = true;
    $("done").hidden = false;
    $("filename").textContent = `answers-${study.study_id}-${rater}.json`;
    save();
  });
  $("download").addEventListener("click", save);
})();
