// The app's words in Uzbek (Latin), Russian and English. English defines the keys; the other two are
// typed against it, so a missing translation fails the type check. Chromium's ICU has no Uzbek month,
// weekday or number data, so dates and numbers are formatted here.

export type Lang = "uz" | "ru" | "en";
export const LANGS: Lang[] = ["uz", "ru", "en"];

type Plural = { one: string; other: string; few?: string; many?: string };

const en = {
  appName: "Kalit",
  tagline: "Your signing key stays on this phone. Any computer can ask it for a signature; you see what is signed and approve it.",
  language: "Language",
  langName: "English",
  firstRunTitle: "Welcome to Kalit",
  firstRunExplain:
    "Kalit keeps your signing keys on this phone, sealed under a PIN. A computer shows a QR code when a web portal asks for your signature; you scan it here, check what is signed, and approve with your PIN.",
  choosePin: "Choose a PIN (at least 6 characters)",
  repeatPin: "Repeat the PIN",
  createVault: "Create my vault",
  pinsDiffer: "The two PINs differ.",
  storageKept: "This browser promised to keep Kalit's data.",
  storageNotKept:
    "This browser did not promise to keep Kalit's data: it may delete it when space runs low. Install Kalit on the home screen and make a backup once you have a key.",
  keys: "Keys",
  sign: "Sign",
  settings: "Settings",
  history: "History",
  noKeys: "No keys yet. Make one to get a certificate.",
  keyCount: { one: "{n} key", other: "{n} keys" } as Plural,
  newKey: "New key",
  keyName: "Name of the key",
  algorithm: "Algorithm",
  noExport: "This key never leaves this phone (no export, no backup)",
  create: "Create",
  generating: "Making the key… (RSA can take several seconds)",
  created: "Created",
  fingerprint: "Fingerprint",
  certificate: "Certificate",
  noCertificate: "No certificate yet",
  subject: "Subject",
  issuer: "Issuer",
  validUntil: "Valid until",
  getCertificate: "Get a certificate",
  raAddress: "Address of the registration office (RA)",
  enrolCode: "Enrolment code",
  requesting: "Asking the registration office…",
  rootFingerprint: "Root certificate fingerprint: compare it with the one the registration office gave you",
  install: "Install",
  installed: "The certificate is installed.",
  register: "Register at the relay",
  relayAddress: "Relay address",
  login: "Login",
  registered: "Registered as {login} at {relay}.",
  registrations: "Registrations",
  deleteKey: "Delete",
  confirmDelete: "Delete the key {name}? This cannot be undone.",
  pin: "PIN",
  unlock: "Unlock",
  cancel: "Cancel",
  ok: "OK",
  back: "Back",
  pasteQr: "Scan the computer's QR code, or paste its text here (it starts with kalit:)",
  connect: "Connect",
  newComputerTitle: "A computer this phone has never seen",
  newComputerWarn:
    "Is this the computer in front of you? Only continue if you started the signing on it yourself. Someone else's computer can claim to be any web site.",
  nameComputer: "Name this computer (for example \"my laptop\")",
  computerKnown: "{name} (used {n} times before)",
  connecting: "Connecting to the computer…",
  connected: "Connected",
  compareCode: "The computer must show the same code. If it does not, stop.",
  waitingRequest: "Waiting for the computer's request…",
  requestFrom: "asks you to sign",
  document: "Document",
  size: "Size",
  type: "Type",
  sha256: "SHA-256",
  preview: "Preview",
  blindWarning: "This is not text the phone can show you; a raw signature over it can mean anything.",
  approve: "Sign",
  decline: "Decline",
  signing: "Signing…",
  signed: "Signed \"{name}\"; the answer is on its way.",
  declined: "Declined \"{name}\".",
  withdrawn: "The computer withdrew this request; nothing was signed.",
  refused: "Refused a request: {reason}",
  ended: "The session ended.",
  endSession: "End the session",
  notRegistered: "This phone is not registered with the relay in the QR code. Register a key first.",
  bytes: { one: "{n} byte", other: "{n} bytes" } as Plural,
  error: "Error",
  errorCode: "Code: {code}",
  offline: "No connection: the app works offline, signing needs the network.",
  noHistory: "Nothing signed yet.",
  backup: "Backup",
  backupExplain: "A backup file holds your keys (not the ones made never to leave this phone), sealed under a passphrase. Keep it somewhere safe: if this browser loses its data, the backup brings your keys back.",
  backupPassphrase: "Backup passphrase (at least 8 characters)",
  repeatPassphrase: "Repeat the passphrase",
  passphrasesDiffer: "The two passphrases differ.",
  makeBackup: "Make a backup",
  backupMade: "The backup file is ready: {file}.",
  skippedNoExport: "Not in the backup (made never to leave this phone): {keys}",
  restore: "Restore from a backup",
  backupFile: "Backup file",
  restored: "Restored: {keys}. Register again at your relay: a device key never leaves its phone.",
  changePin: "Change the PIN",
  currentPin: "Current PIN",
  newPin: "New PIN (at least 6 characters)",
  pinChanged: "The PIN is changed.",
  working: "Working… (this takes a few seconds)",
  devices: "Devices",
  thisPhone: "this phone",
  removeDevice: "Remove",
  confirmRemoveDevice: "Remove the device {name} from {login}? Use this for a lost phone. It can no longer sign for you.",
  deviceRemoved: "The device was removed.",
  registeredAt: "Registered",
  importPfx: "Import a PFX file",
  chooseLogin: "This phone has several logins at this relay. Which one signs?",
  pfxFile: "PFX or P12 file (from your flash drive)",
  pfxPassword: "The PFX file's password",
  exportPfx: "Export as a PFX file",
  newPfxPassword: "A password for the PFX file (at least 8 characters)",
  pfxReady: "The PFX file is ready: {file}.",
  scan: "Scan with the camera",
  stopScan: "Stop",
  scanning: "Point the camera at the QR code on the computer's screen.",
  cameraRefused: "The camera was not allowed. Allow it in the browser's site settings, or paste the QR's text.",
  cameraMissing: "This device has no camera the browser can use. Paste the QR's text instead.",
};

export type Key = keyof typeof en;
type Dict = { [K in Key]: (typeof en)[K] extends Plural ? Plural : string };

const uz: Dict = {
  appName: "Kalit",
  tagline: "Imzo kalitingiz shu telefonda qoladi. Istalgan kompyuter undan imzo soʻrashi mumkin; siz nima imzolanayotganini koʻrib, tasdiqlaysiz.",
  language: "Til",
  langName: "Oʻzbekcha",
  firstRunTitle: "Kalitga xush kelibsiz",
  firstRunExplain:
    "Kalit imzo kalitlaringizni shu telefonda PIN-kod ostida saqlaydi. Veb-portal imzo soʻraganda kompyuter QR-kod koʻrsatadi; uni shu yerda skanerlaysiz, nima imzolanayotganini tekshirasiz va PIN-kod bilan tasdiqlaysiz.",
  choosePin: "PIN-kod tanlang (kamida 6 belgi)",
  repeatPin: "PIN-kodni takrorlang",
  createVault: "Xazinamni yaratish",
  pinsDiffer: "Ikki PIN-kod bir xil emas.",
  storageKept: "Bu brauzer Kalit maʼlumotlarini saqlashga vaʼda berdi.",
  storageNotKept:
    "Bu brauzer Kalit maʼlumotlarini saqlashga vaʼda bermadi: joy yetmasa, ularni oʻchirib yuborishi mumkin. Kalitni bosh ekranga oʻrnating va kalit yaratgach, zaxira nusxa oling.",
  keys: "Kalitlar",
  sign: "Imzolash",
  settings: "Sozlamalar",
  history: "Tarix",
  noKeys: "Hali kalit yoʻq. Sertifikat olish uchun kalit yarating.",
  keyCount: { one: "{n} ta kalit", other: "{n} ta kalit" },
  newKey: "Yangi kalit",
  keyName: "Kalit nomi",
  algorithm: "Algoritm",
  noExport: "Bu kalit telefondan hech qachon chiqmaydi (eksport ham, zaxira ham yoʻq)",
  create: "Yaratish",
  generating: "Kalit yaratilmoqda… (RSA bir necha soniya olishi mumkin)",
  created: "Yaratilgan",
  fingerprint: "Barmoq izi",
  certificate: "Sertifikat",
  noCertificate: "Hali sertifikat yoʻq",
  subject: "Egasi",
  issuer: "Beruvchi",
  validUntil: "Amal qilish muddati",
  getCertificate: "Sertifikat olish",
  raAddress: "Roʻyxatga olish markazi (RA) manzili",
  enrolCode: "Roʻyxatdan oʻtish kodi",
  requesting: "Roʻyxatga olish markazidan soʻralmoqda…",
  rootFingerprint: "Ildiz sertifikatining barmoq izi: uni roʻyxatga olish markazi bergani bilan solishtiring",
  install: "Oʻrnatish",
  installed: "Sertifikat oʻrnatildi.",
  register: "Relayda roʻyxatdan oʻtish",
  relayAddress: "Relay manzili",
  login: "Login",
  registered: "{relay} relayida {login} sifatida roʻyxatdan oʻtildi.",
  registrations: "Roʻyxatdan oʻtishlar",
  deleteKey: "Oʻchirish",
  confirmDelete: "{name} kaliti oʻchirilsinmi? Buni qaytarib boʻlmaydi.",
  pin: "PIN-kod",
  unlock: "Ochish",
  cancel: "Bekor qilish",
  ok: "OK",
  back: "Orqaga",
  pasteQr: "Kompyuterdagi QR-kodni skanerlang yoki uning matnini shu yerga qoʻying (kalit: bilan boshlanadi)",
  connect: "Ulanish",
  newComputerTitle: "Bu telefon hech qachon koʻrmagan kompyuter",
  newComputerWarn:
    "Bu qarshingizdagi kompyutermi? Imzolashni unda oʻzingiz boshlagan boʻlsangizgina davom eting. Begona kompyuter oʻzini istalgan sayt deb koʻrsatishi mumkin.",
  nameComputer: "Bu kompyuterga nom bering (masalan, «mening noutbukim»)",
  computerKnown: "{name} (avval {n} marta ishlatilgan)",
  connecting: "Kompyuterga ulanilmoqda…",
  connected: "Ulandi",
  compareCode: "Kompyuter aynan shu kodni koʻrsatishi kerak. Aks holda toʻxtating.",
  waitingRequest: "Kompyuter soʻrovi kutilmoqda…",
  requestFrom: "imzolashingizni soʻramoqda",
  document: "Hujjat",
  size: "Hajmi",
  type: "Turi",
  sha256: "SHA-256",
  preview: "Koʻrinishi",
  blindWarning: "Bu telefon koʻrsata oladigan matn emas; uning ustidagi xom imzo har qanday maʼnoni anglatishi mumkin.",
  approve: "Imzolash",
  decline: "Rad etish",
  signing: "Imzolanmoqda…",
  signed: "«{name}» imzolandi; javob yuborildi.",
  declined: "«{name}» rad etildi.",
  withdrawn: "Kompyuter bu soʻrovni qaytarib oldi; hech narsa imzolanmadi.",
  refused: "Soʻrov rad etildi: {reason}",
  ended: "Seans tugadi.",
  endSession: "Seansni tugatish",
  notRegistered: "Bu telefon QR-koddagi relayda roʻyxatdan oʻtmagan. Avval kalitni roʻyxatdan oʻtkazing.",
  bytes: { one: "{n} bayt", other: "{n} bayt" },
  error: "Xato",
  errorCode: "Kod: {code}",
  offline: "Aloqa yoʻq: ilova oflayn ishlaydi, imzolash uchun tarmoq kerak.",
  noHistory: "Hali hech narsa imzolanmagan.",
  backup: "Zaxira nusxa",
  backupExplain: "Zaxira fayl kalitlaringizni (telefondan chiqmaydigan qilib yaratilganlaridan tashqari) parol ostida saqlaydi. Uni xavfsiz joyda saqlang: brauzer maʼlumotlarini yoʻqotsa, zaxira kalitlaringizni qaytaradi.",
  backupPassphrase: "Zaxira paroli (kamida 8 belgi)",
  repeatPassphrase: "Parolni takrorlang",
  passphrasesDiffer: "Ikki parol bir xil emas.",
  makeBackup: "Zaxira nusxa olish",
  backupMade: "Zaxira fayl tayyor: {file}.",
  skippedNoExport: "Zaxiraga kirmadi (telefondan chiqmaydigan qilib yaratilgan): {keys}",
  restore: "Zaxiradan tiklash",
  backupFile: "Zaxira fayl",
  restored: "Tiklandi: {keys}. Relayda qaytadan roʻyxatdan oʻting: qurilma kaliti oʻz telefonidan chiqmaydi.",
  changePin: "PIN-kodni oʻzgartirish",
  currentPin: "Joriy PIN-kod",
  newPin: "Yangi PIN-kod (kamida 6 belgi)",
  pinChanged: "PIN-kod oʻzgartirildi.",
  working: "Bajarilmoqda… (bir necha soniya)",
  devices: "Qurilmalar",
  thisPhone: "shu telefon",
  removeDevice: "Olib tashlash",
  confirmRemoveDevice: "{name} qurilmasi {login} loginidan olib tashlansinmi? Yoʻqolgan telefon uchun. U endi siz uchun imzo qoʻya olmaydi.",
  deviceRemoved: "Qurilma olib tashlandi.",
  registeredAt: "Roʻyxatdan oʻtgan",
  importPfx: "PFX faylni import qilish",
  chooseLogin: "Bu telefonda ushbu relayda bir nechta login bor. Qaysi biri imzolaydi?",
  pfxFile: "PFX yoki P12 fayl (fleshkangizdan)",
  pfxPassword: "PFX fayl paroli",
  exportPfx: "PFX fayl sifatida eksport qilish",
  newPfxPassword: "PFX fayl uchun parol (kamida 8 belgi)",
  pfxReady: "PFX fayl tayyor: {file}.",
  scan: "Kamera bilan skanerlash",
  stopScan: "Toʻxtatish",
  scanning: "Kamerani kompyuter ekranidagi QR-kodga qarating.",
  cameraRefused: "Kameraga ruxsat berilmadi. Brauzerning sayt sozlamalarida ruxsat bering yoki QR matnini qoʻying.",
  cameraMissing: "Bu qurilmada brauzer foydalana oladigan kamera yoʻq. QR matnini qoʻying.",
};

const ru: Dict = {
  appName: "Kalit",
  tagline: "Ваш ключ подписи остаётся на этом телефоне. Любой компьютер может попросить подпись; вы видите, что подписываете, и подтверждаете.",
  language: "Язык",
  langName: "Русский",
  firstRunTitle: "Добро пожаловать в Kalit",
  firstRunExplain:
    "Kalit хранит ваши ключи подписи на этом телефоне под PIN-кодом. Когда веб-портал просит подпись, компьютер показывает QR-код; вы сканируете его здесь, проверяете, что подписывается, и подтверждаете PIN-кодом.",
  choosePin: "Выберите PIN-код (не меньше 6 символов)",
  repeatPin: "Повторите PIN-код",
  createVault: "Создать хранилище",
  pinsDiffer: "PIN-коды не совпадают.",
  storageKept: "Браузер обещал сохранять данные Kalit.",
  storageNotKept:
    "Браузер не обещал сохранять данные Kalit: при нехватке места он может их удалить. Установите Kalit на главный экран и сделайте резервную копию, когда появится ключ.",
  keys: "Ключи",
  sign: "Подписать",
  settings: "Настройки",
  history: "История",
  noKeys: "Ключей пока нет. Создайте ключ, чтобы получить сертификат.",
  keyCount: { one: "{n} ключ", few: "{n} ключа", many: "{n} ключей", other: "{n} ключа" },
  newKey: "Новый ключ",
  keyName: "Название ключа",
  algorithm: "Алгоритм",
  noExport: "Ключ никогда не покидает этот телефон (без экспорта и резервной копии)",
  create: "Создать",
  generating: "Создание ключа… (RSA может занять несколько секунд)",
  created: "Создан",
  fingerprint: "Отпечаток",
  certificate: "Сертификат",
  noCertificate: "Сертификата пока нет",
  subject: "Владелец",
  issuer: "Издатель",
  validUntil: "Действует до",
  getCertificate: "Получить сертификат",
  raAddress: "Адрес центра регистрации (RA)",
  enrolCode: "Код регистрации",
  requesting: "Запрос в центр регистрации…",
  rootFingerprint: "Отпечаток корневого сертификата: сравните его с тем, что дал центр регистрации",
  install: "Установить",
  installed: "Сертификат установлен.",
  register: "Зарегистрироваться на релее",
  relayAddress: "Адрес релея",
  login: "Логин",
  registered: "Зарегистрирован как {login} на {relay}.",
  registrations: "Регистрации",
  deleteKey: "Удалить",
  confirmDelete: "Удалить ключ {name}? Это нельзя отменить.",
  pin: "PIN-код",
  unlock: "Открыть",
  cancel: "Отмена",
  ok: "OK",
  back: "Назад",
  pasteQr: "Отсканируйте QR-код компьютера или вставьте его текст (начинается с kalit:)",
  connect: "Подключиться",
  newComputerTitle: "Компьютер, который этот телефон ещё не видел",
  newComputerWarn:
    "Это компьютер перед вами? Продолжайте, только если сами начали подписание на нём. Чужой компьютер может выдать себя за любой сайт.",
  nameComputer: "Назовите этот компьютер (например, «мой ноутбук»)",
  computerKnown: "{name} (использовался {n} раз)",
  connecting: "Подключение к компьютеру…",
  connected: "Подключено",
  compareCode: "Компьютер должен показать тот же код. Если нет — остановитесь.",
  waitingRequest: "Ожидание запроса компьютера…",
  requestFrom: "просит вас подписать",
  document: "Документ",
  size: "Размер",
  type: "Тип",
  sha256: "SHA-256",
  preview: "Просмотр",
  blindWarning: "Телефон не может показать это как текст; «сырая» подпись над этим может означать что угодно.",
  approve: "Подписать",
  decline: "Отклонить",
  signing: "Подписание…",
  signed: "«{name}» подписан; ответ отправлен.",
  declined: "«{name}» отклонён.",
  withdrawn: "Компьютер отозвал запрос; ничего не подписано.",
  refused: "Запрос отклонён: {reason}",
  ended: "Сеанс завершён.",
  endSession: "Завершить сеанс",
  notRegistered: "Этот телефон не зарегистрирован на релее из QR-кода. Сначала зарегистрируйте ключ.",
  bytes: { one: "{n} байт", few: "{n} байта", many: "{n} байт", other: "{n} байта" },
  error: "Ошибка",
  errorCode: "Код: {code}",
  offline: "Нет связи: приложение работает офлайн, для подписи нужна сеть.",
  noHistory: "Пока ничего не подписано.",
  backup: "Резервная копия",
  backupExplain: "Файл резервной копии хранит ваши ключи (кроме созданных без права покидать телефон) под паролем. Храните его в надёжном месте: если браузер потеряет данные, копия вернёт ключи.",
  backupPassphrase: "Пароль копии (не меньше 8 символов)",
  repeatPassphrase: "Повторите пароль",
  passphrasesDiffer: "Пароли не совпадают.",
  makeBackup: "Сделать резервную копию",
  backupMade: "Файл резервной копии готов: {file}.",
  skippedNoExport: "Не вошли в копию (созданы без права покидать телефон): {keys}",
  restore: "Восстановить из копии",
  backupFile: "Файл копии",
  restored: "Восстановлено: {keys}. Зарегистрируйтесь на релее заново: ключ устройства не покидает свой телефон.",
  changePin: "Сменить PIN-код",
  currentPin: "Текущий PIN-код",
  newPin: "Новый PIN-код (не меньше 6 символов)",
  pinChanged: "PIN-код изменён.",
  working: "Выполняется… (несколько секунд)",
  devices: "Устройства",
  thisPhone: "этот телефон",
  removeDevice: "Удалить",
  confirmRemoveDevice: "Удалить устройство {name} из {login}? Для потерянного телефона. Оно больше не сможет подписывать за вас.",
  deviceRemoved: "Устройство удалено.",
  registeredAt: "Зарегистрировано",
  importPfx: "Импортировать файл PFX",
  chooseLogin: "У этого телефона несколько логинов на этом релее. Каким подписать?",
  pfxFile: "Файл PFX или P12 (с вашей флешки)",
  pfxPassword: "Пароль файла PFX",
  exportPfx: "Экспортировать в файл PFX",
  newPfxPassword: "Пароль для файла PFX (не меньше 8 символов)",
  pfxReady: "Файл PFX готов: {file}.",
  scan: "Сканировать камерой",
  stopScan: "Остановить",
  scanning: "Наведите камеру на QR-код на экране компьютера.",
  cameraRefused: "Доступ к камере не разрешён. Разрешите его в настройках сайта в браузере или вставьте текст QR-кода.",
  cameraMissing: "На этом устройстве нет камеры, доступной браузеру. Вставьте текст QR-кода.",
};

export const DICTS: Record<Lang, Dict> = { en: en as Dict, uz, ru };

const LANG_KEY = "kalit.lang";

/** The stored choice, then the phone's languages, then Uzbek. */
export function initialLang(stored: string | null, languages: readonly string[]): Lang {
  if (stored && (LANGS as string[]).includes(stored)) return stored as Lang;
  for (const l of languages) {
    const base = l.toLowerCase().split("-")[0];
    if (base && (LANGS as string[]).includes(base)) return base as Lang;
  }
  return "uz";
}

export function saveLang(l: Lang): void {
  try {
    localStorage.setItem(LANG_KEY, l);
  } catch {
    /* private mode: the choice lasts this visit */
  }
}

export function storedLang(): string | null {
  try {
    return localStorage.getItem(LANG_KEY);
  } catch {
    return null;
  }
}

/** A translated string with `{name}` parameters filled in as text. */
export function t(lang: Lang, key: Key, p: Record<string, string | number> = {}): string {
  const v = DICTS[lang][key];
  const s = typeof v === "string" ? v : pick(lang, v, Number(p.n ?? 0));
  return s.replace(/\{(\w+)\}/g, (_, k: string) => {
    const x = p[k];
    return x === undefined ? `{${k}}` : typeof x === "number" ? formatNumber(lang, x) : x;
  });
}

function pick(lang: Lang, v: Plural, n: number): string {
  const rule = new Intl.PluralRules(lang === "uz" ? "uz" : lang).select(n) as keyof Plural;
  return v[rule] ?? v.other;
}

/** Whole numbers grouped by thousands: `1 234 567` in Uzbek and Russian, `1,234,567` in English. */
export function formatNumber(lang: Lang, n: number): string {
  const s = String(Math.trunc(Math.abs(n)));
  const sep = lang === "en" ? "," : "\u00a0";
  const grouped = s.replace(/\B(?=(\d{3})+(?!\d))/g, sep);
  return n < 0 ? `-${grouped}` : grouped;
}

const UZ_MONTHS = ["yanvar", "fevral", "mart", "aprel", "may", "iyun", "iyul", "avgust", "sentabr", "oktabr", "noyabr", "dekabr"];

/** A date and time in the person's language (Uzbek written here: Chromium has no Uzbek data). */
export function formatDate(lang: Lang, epochMs: number): string {
  const d = new Date(epochMs);
  if (lang === "uz") {
    const hh = String(d.getHours()).padStart(2, "0");
    const mm = String(d.getMinutes()).padStart(2, "0");
    return `${d.getFullYear()}-yil ${d.getDate()}-${UZ_MONTHS[d.getMonth()]}, ${hh}:${mm}`;
  }
  return new Intl.DateTimeFormat(lang === "ru" ? "ru-RU" : "en-GB", { dateStyle: "long", timeStyle: "short" }).format(d);
}
